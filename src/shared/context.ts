import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TokexConfig } from './config.js';
import { TokexError } from './errors.js';
import { IamClient } from './iam-client.js';
import { createFastFailConnection, createWorkerConnection } from './redis.js';
import { TokenStore } from './token-store.js';

/** What every role of a running broker shares: configuration, logger, connections, store, IAM client. */
export interface BrokerContext {
  config: TokexConfig;
  logger: Logger;
  /** Blocking-capable connection for BullMQ workers (`maxRetriesPerRequest: null`). */
  workerConnection: Redis;
  /** Fail-fast connection for producers and readers. */
  clientConnection: Redis;
  store: TokenStore;
  /** The IAM client; throws `config_invalid` on first use when IAM_* is not configured. */
  iam(): IamClient;
  /** Closes the connections (roles close themselves first). */
  close(): Promise<void>;
}

/** Builds the shared context from a loaded configuration. */
export function createContext(config: TokexConfig, logger: Logger): BrokerContext {
  const workerConnection = createWorkerConnection(config.redisUrl);
  const clientConnection = createFastFailConnection(config.redisUrl);
  for (const conn of [workerConnection, clientConnection]) {
    conn.on('error', (err) => logger.debug({ err }, 'Redis connection error'));
  }
  const store = new TokenStore({
    redis: clientConnection,
    prefix: config.prefix,
    keyRing: config.keyRing,
    refreshPolicy: {
      skewSeconds: config.refresh.skewSeconds,
      offlineKeepaliveSeconds: config.refresh.offlineKeepaliveSeconds,
      accessTokens: config.refresh.accessTokens,
    },
    eventsMaxLen: config.retention.eventsMaxLen,
  });
  let iam: IamClient | undefined;
  return {
    config,
    logger,
    workerConnection,
    clientConnection,
    store,
    iam() {
      if (!iam) iam = createIamClient(config);
      return iam;
    },
    async close() {
      await Promise.allSettled([workerConnection.quit(), clientConnection.quit()]);
    },
  };
}

/** The IAM client from the configuration; `config_invalid` if the IAM variables are missing. */
export function createIamClient(config: TokexConfig): IamClient {
  const { tokenUrl, clientId, clientSecret } = config.iam;
  if (!tokenUrl || !clientId || !clientSecret) {
    throw new TokexError('config_invalid', 'IAM_TOKEN_URL, IAM_CLIENT_ID and IAM_CLIENT_SECRET are required by the worker and refresh roles');
  }
  return new IamClient({ ...config.iam, tokenUrl, clientId, clientSecret });
}
