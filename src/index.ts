/**
 * token-exchange-worker: the package entry. Producers, readers and embedders import from here.
 */
export { TokenProducer, type TokenProducerOptions, type EnqueueExchangeInput } from './producer/token-producer.js';
export {
  TokenStore, type TokenStoreOptions, type TokenStatus, type TokenState, type StoredTokenSet, type SaveTokenSetInput,
} from './shared/token-store.js';
export { TokexError, isTokexError, type TokexErrorCode } from './shared/errors.js';
export { KeyRing, SUBJECT_TOKEN_AAD, tokenSetAad, ENVELOPE_STRING_PREFIX } from './shared/crypto.js';
export { loadConfig, type TokexConfig } from './shared/config.js';
export { KeyLayout } from './shared/keys.js';
export { IamClient, type IamClientOptions } from './shared/iam-client.js';
export { classifyIamResponse, parseRetryAfterMs, type TokenResponse } from './shared/iam-outcome.js';
export {
  EXCHANGE_QUEUE, REFRESH_QUEUE, EXCHANGE_JOB_OPTIONS, exchangeJobDataSchema,
  type ExchangeJobData, type ExchangeJobResult,
} from './shared/job-contract.js';
export { ExchangeWorker, type ExchangeWorkerOptions } from './worker/exchange-worker.js';
export { startBroker, ALL_ROLES, type Broker, type RoleName } from './broker.js';
export { createLogger } from './shared/logger.js';
export { type GetAccessTokenOptions } from './shared/token-store.js';
export { UserLock, defaultLockOptions, type UserLockOptions, type HeldLock } from './shared/user-lock.js';
export { UserRefresher, type RefreshNeed, type RefreshOutcome, type RefreshResult } from './shared/refresh-user.js';
export { RefreshWorker, refreshJobOptions, REFRESH_JOB_NAME, type RefreshWorkerOptions, type RefreshJobData, type RefreshJobResult } from './worker/refresh-worker.js';
export { RefreshScheduler, runTick, REFRESH_TICK_QUEUE, type RefreshSchedulerOptions, type TickResult } from './worker/scheduler.js';
export { ReauthWebhook, type ReauthWebhookPayload } from './worker/reauth-webhook.js';
export { buildHttpApi, type HttpApi, type HttpApiOptions } from './producer/http/server.js';
export { revokeUser, type RevokeUserInput, type RevokeUserResult } from './shared/revoke-user.js';
export { TokexMetrics } from './shared/metrics.js';
