/** Small timing helpers shared by the broker: one place for sleeps and bounded waits. */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What {@link withinMs} resolves with when the time ran out first. */
export const TIMED_OUT = Symbol('timed out');

/**
 * Waits for `promise` at most `timeoutMs`: resolves with its value, or with {@link TIMED_OUT}
 * (the promise keeps running; its rejection after the timeout is ignored). The timer is always cleared.
 */
export async function withinMs<T>(promise: Promise<T>, timeoutMs: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  promise.catch(() => undefined);
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
