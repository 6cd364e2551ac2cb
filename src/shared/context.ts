import type { RedisClient } from './redis.js';
import type { Logger } from 'pino';
import type { TokexConfig } from './config.js';
import { TokexError } from './errors.js';
import { IamClient, type IamClientOptions } from './iam-client.js';
import { TokexMetrics } from './metrics.js';
import { createFastFailConnection, createWorkerConnection } from './redis.js';
import { TokenStore, type TokenStoreOptions } from './token-store.js';
import { defaultLockOptions } from './user-lock.js';

/** What every role of a running broker shares: configuration, logger, connections, store, IAM client. */
export interface BrokerContext {
  config: TokexConfig;
  logger: Logger;
  /** Blocking-capable connection for BullMQ workers (`maxRetriesPerRequest: null`). */
  workerConnection: RedisClient;
  /** Fail-fast connection for producers and readers. */
  clientConnection: RedisClient;
  store: TokenStore;
  /** The process's Prometheus metrics (served by the producer role at /metrics). */
  metrics: TokexMetrics;
  /** The IAM client; throws `config_invalid` on first use when IAM_* is not configured. */
  iam(): IamClient;
  /** Closes the connections (roles close themselves first). */
  close(): Promise<void>;
}

/** Builds the shared context from a loaded configuration. */
export function createContext(config: TokexConfig, logger: Logger): BrokerContext {
  const workerConnection = createWorkerConnection(config.redis);
  const clientConnection = createFastFailConnection(config.redis);
  for (const conn of [workerConnection, clientConnection]) {
    conn.on('error', (err) => logger.debug({ err }, 'Redis connection error'));
  }
  const metrics = new TokexMetrics();
  metrics.watchRedis('worker', workerConnection);
  metrics.watchRedis('client', clientConnection);
  // The store refreshes on demand for readers when the IAM is configured (roles without IAM_* still start).
  let iam: IamClient | undefined = config.iam.tokenUrl && config.iam.clientId && config.iam.clientSecret
    ? createIamClient(config, { onCall: metrics.observeIamCall })
    : undefined;
  const store = createTokenStore(config, clientConnection, { iam, logger: logger.child({ component: 'token-store' }) });
  return {
    config,
    logger,
    workerConnection,
    clientConnection,
    store,
    metrics,
    iam() {
      if (!iam) iam = createIamClient(config, { onCall: metrics.observeIamCall });
      return iam;
    },
    async close() {
      // Refreshed tokens still being written may be the only valid ones: finish them first.
      await store.drain();
      await Promise.allSettled([workerConnection.quit(), clientConnection.quit(), iam?.close()]);
    },
  };
}

/** A token store configured from the configuration (refresh policy, events length, lock sizing). */
export function createTokenStore(
  config: TokexConfig,
  redis: RedisClient,
  extra: Pick<TokenStoreOptions, 'iam' | 'logger'> = {},
): TokenStore {
  return new TokenStore({
    redis,
    prefix: config.prefix,
    keyRing: config.keyRing,
    refreshPolicy: {
      skewSeconds: config.refresh.skewSeconds,
      offlineKeepaliveSeconds: config.refresh.offlineKeepaliveSeconds,
      accessTokens: config.refresh.accessTokens,
    },
    eventsMaxLen: config.retention.eventsMaxLen,
    lock: defaultLockOptions(config.iam.timeoutMs),
    ...extra,
  });
}

/** The IAM client from the configuration; `config_invalid` if the IAM variables are missing. */
export function createIamClient(config: TokexConfig, hooks: Pick<IamClientOptions, 'onCall'> = {}): IamClient {
  const { tokenUrl, clientId, clientSecret } = config.iam;
  if (!tokenUrl || !clientId || !clientSecret) {
    throw new TokexError('config_invalid', 'IAM_TOKEN_URL, IAM_CLIENT_ID and IAM_CLIENT_SECRET are required by the worker and refresh roles');
  }
  return new IamClient({ ...config.iam, tokenUrl, clientId, clientSecret, ...hooks });
}
