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
