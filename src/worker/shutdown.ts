import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import { withinMs } from '../shared/timing.js';

/**
 * Closes a BullMQ worker, waiting at most `timeoutMs` for active jobs; then cancels them through
 * their AbortSignal (they go back to retry, nothing is lost) and closes for good. `worker.close()`
 * alone waits forever, which hangs deployments.
 */
export async function closeWorker(worker: Worker, timeoutMs: number, logger: Logger): Promise<void> {
  const closing = worker.close().then(() => 'closed' as const);
  if ((await withinMs(closing, timeoutMs)) === 'closed') return;
  logger.warn({ queue: worker.name, timeoutMs }, 'active jobs did not finish in time; cancelling them');
  worker.cancelAllJobs('shutdown');
  // Cancelled processors fail fast and BullMQ records the retry; only a processor that ignores
  // its signal is left behind (its job comes back through stall detection).
  if ((await withinMs(closing, CANCEL_GRACE_MS)) === 'closed') return;
  logger.warn({ queue: worker.name }, 'cancelled jobs did not stop; forcing the worker closed');
  await worker.close(true);
}

/** How long cancelled jobs get to record their retry before the worker is forced closed. */
const CANCEL_GRACE_MS = 5000;

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
