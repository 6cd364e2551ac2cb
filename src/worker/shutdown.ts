import type { Worker } from 'bullmq';
import type { Logger } from 'pino';

/**
 * Closes a BullMQ worker, waiting at most `timeoutMs` for active jobs; then cancels them through
 * their AbortSignal (they go back to retry, nothing is lost) and closes for good. `worker.close()`
 * alone waits forever, which hangs deployments.
 */
export async function closeWorker(worker: Worker, timeoutMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const closing = worker.close().then(() => 'closed' as const);
  const outcome = await Promise.race([closing, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.warn({ queue: worker.name, timeoutMs }, 'active jobs did not finish in time; cancelling them');
    worker.cancelAllJobs('shutdown');
    await worker.close(true);
  }
}

/** Runs `stop` once on the first SIGTERM or SIGINT; a second signal exits at once. */
export function onShutdownSignal(stop: (signal: string) => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
