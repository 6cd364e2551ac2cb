import type { RunningRole } from '../broker.js';
import type { BrokerContext } from '../shared/context.js';
import { TokexError } from '../shared/errors.js';
import { REFRESH_QUEUE } from '../shared/job-contract.js';
import { ReauthWebhook } from './reauth-webhook.js';
import { RefreshWorker } from './refresh-worker.js';

/** Starts the refresh role: the `refresh` queue's worker and, when REAUTH_WEBHOOK_URL is set, the reauth webhook. */
export async function startRefreshRole(ctx: BrokerContext): Promise<RunningRole> {
  const { config, store } = ctx;
  ctx.iam(); // fails fast with config_invalid when IAM_* is missing
  if (!store.refresher) throw new TokexError('config_invalid', 'the refresh role needs IAM_TOKEN_URL, IAM_CLIENT_ID and IAM_CLIENT_SECRET');
  const logger = ctx.logger.child({ role: 'refresh' });
  const worker = new RefreshWorker({
    connection: ctx.workerConnection,
    prefix: config.prefix,
    keys: store.keys,
    refresher: store.refresher,
    logger,
    concurrency: config.refresh.concurrency,
    ratePerSecond: config.refresh.ratePerSecond,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  let webhook: ReauthWebhook | undefined;
  if (config.refresh.reauthWebhookUrl) {
    webhook = new ReauthWebhook({ redis: ctx.workerConnection.duplicate(), keys: store.keys, url: config.refresh.reauthWebhookUrl, logger });
    await webhook.start();
  }
  ctx.metrics.watchWorker(REFRESH_QUEUE, worker.worker);
  worker.start();
  await worker.worker.waitUntilReady();
  return {
    name: 'refresh',
    async close() {
      await webhook?.close();
      await worker.close();
    },
  };
}
