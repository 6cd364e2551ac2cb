import type { BrokerContext } from '../shared/context.js';
import type { RunningRole } from '../broker.js';
import { EXCHANGE_QUEUE } from '../shared/job-contract.js';
import { ExchangeWorker } from './exchange-worker.js';

/** Starts the exchange worker role. */
export async function startExchangeRole(ctx: BrokerContext): Promise<RunningRole> {
  const { config } = ctx;
  const worker = new ExchangeWorker({
    connection: ctx.workerConnection,
    prefix: config.prefix,
    keyRing: config.keyRing,
    iam: ctx.iam(),
    store: ctx.store,
    logger: ctx.logger.child({ role: 'worker' }),
    concurrency: config.exchange.concurrency,
    defaultDeadlineSeconds: config.exchange.defaultDeadlineSeconds,
    allowPlaintextJobs: config.exchange.allowPlaintextJobs,
    failedRetention: { ageSeconds: config.retention.failedAgeSeconds, count: config.retention.failedCount },
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  ctx.metrics.watchWorker(EXCHANGE_QUEUE, worker.worker);
  worker.start();
  await worker.worker.waitUntilReady();
  return { name: 'worker', close: () => worker.close() };
}
