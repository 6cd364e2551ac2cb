import type { Logger } from 'pino';
import { isTokexError } from './errors.js';
import { sleep } from './timing.js';

/** Options of {@link retryRedisWrite}. */
export interface RetryWriteOptions {
  logger: Logger;
  /** Give up after this long. @defaultValue 60000 */
  maxWaitMs?: number;
  /** What is being written, for the log. */
  what: string;
}

/**
 * Runs a Redis write until it succeeds while Redis fails with `redis_unavailable`, holding the data
 * in memory: used after the IAM answered, when the old refresh token may already be dead and
 * dropping the new tokens would cost the user's session. Other errors are thrown at once.
 */
export async function retryRedisWrite<T>(write: () => Promise<T>, options: RetryWriteOptions): Promise<T> {
  const maxWaitMs = options.maxWaitMs ?? 60_000;
  const startedMs = Date.now();
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await write();
    } catch (err) {
      if (!isTokexError(err, 'redis_unavailable') || Date.now() - startedMs > maxWaitMs) throw err;
      const delayMs = Math.min(2000, 50 * 2 ** attempt);
      options.logger.warn({ err, attempt, delayMs }, `Redis write of ${options.what} failed; retrying with the tokens held in memory`);
      await sleep(delayMs);
    }
  }
}
