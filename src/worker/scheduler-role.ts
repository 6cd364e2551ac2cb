import type { RunningRole } from '../broker.js';
import type { BrokerContext } from '../shared/context.js';
import { RefreshScheduler } from './scheduler.js';

/** Starts the scheduler role: upserts the refresh tick's Job Scheduler and runs this instance's tick worker. */
export async function startSchedulerRole(ctx: BrokerContext): Promise<RunningRole> {
  const scheduler = new RefreshScheduler({
    connection: ctx.workerConnection,
    prefix: ctx.config.prefix,
    keys: ctx.store.keys,
    logger: ctx.logger.child({ role: 'scheduler' }),
    tickMs: ctx.config.refresh.tickMs,
    shutdownTimeoutMs: ctx.config.shutdownTimeoutMs,
  });
  await scheduler.start();
  return { name: 'scheduler', close: () => scheduler.close() };
}
