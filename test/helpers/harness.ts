import { QueueEvents } from 'bullmq';
import { createWorkerConnection, type RedisClient } from '../../src/shared/redis.js';
import { startBroker, type Broker, type RoleName } from '../../src/broker.js';
import { startDevIam, type DevIam, type DevIamOptions } from '../../src/dev-iam/index.js';
import { TokenProducer } from '../../src/producer/token-producer.js';
import { KeyRing } from '../../src/shared/crypto.js';
import { loadConfig, type TokexConfig } from '../../src/shared/config.js';
import { EXCHANGE_QUEUE } from '../../src/shared/job-contract.js';
import type { TokenStore } from '../../src/shared/token-store.js';
import { captureLogger, eventually } from './logs.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './redis.js';

/** A broker wired to a real Redis (own prefix) and a development IAM, with captured debug logs. */
export interface Harness {
  iam: DevIam;
  config: TokexConfig;
  prefix: string;
  broker: Broker;
  producer: TokenProducer;
  store: TokenStore;
  /** A plain connection for assertions. */
  redis: RedisClient;
  logs: ReturnType<typeof captureLogger>;
  /** Waits until an exchange job completed or failed (seen on the queue's events stream). */
  waitForJob(jobId: string, timeoutMs?: number): Promise<JobOutcome>;
  close(): Promise<void>;
}

/** How an exchange job ended. */
export interface JobOutcome {
  state: 'completed' | 'failed';
  returnvalue?: unknown;
  failedReason?: string;
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  /** Options for a development IAM started for this harness (ignored with `iam`). */
  iamOptions?: DevIamOptions;
  /** Use this running development IAM instead of starting one. */
  iam?: DevIam;
  /** Extra environment variables (override the defaults). */
  env?: Record<string, string>;
  /** Key prefix, e.g. another harness's to share its data. @defaultValue a fresh unique prefix */
  prefix?: string;
  /** Roles to start. @defaultValue ['worker'] */
  roles?: RoleName[];
}

/** Environment for a broker against `iam` under `prefix`. */
export function harnessEnv(iam: DevIam, prefix: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: TEST_REDIS_URL,
    TOKEX_PREFIX: prefix,
    IAM_TOKEN_URL: iam.tokenUrl,
    IAM_CLIENT_ID: iam.workerClient.clientId,
    IAM_CLIENT_SECRET: iam.workerClient.clientSecret,
    IAM_REVOCATION_URL: iam.revocationUrl,
    TOKEN_ENCRYPTION_KEYS: KeyRing.generateSpec('test'),
    LOG_LEVEL: 'debug',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  };
}

/** Starts a harness; `close()` stops everything and deletes the prefix's keys. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const ownIam = !options.iam;
  const iam = options.iam ?? (await startDevIam(options.iamOptions));
  // On a cluster every broker key must share one slot: the prefix carries a hash tag.
  const prefix = options.prefix ?? (options.env?.REDIS_CLUSTER === 'true' ? `{${uniquePrefix()}}` : uniquePrefix());
  const config = loadConfig({ env: harnessEnv(iam, prefix, options.env), need: ['iam'] });
  const logs = captureLogger(config.logLevel);
  const broker = await startBroker(config, logs.logger, options.roles ?? ['worker']);
  const producer = new TokenProducer({ redis: config.redis, prefix, keyRing: config.keyRing });
  // Assertions and cleanup go to the harness's own Redis (a cluster, or a server a suite started).
  const redis = options.env?.REDIS_URL || options.env?.REDIS_CLUSTER === 'true' ? createWorkerConnection(config.redis) : testRedis();
  const outcomes = new Map<string, JobOutcome>();
  const eventsConnection = createWorkerConnection(config.redis);
  eventsConnection.on('error', () => {});
  const events = new QueueEvents(EXCHANGE_QUEUE, { connection: eventsConnection, prefix });
  events.on('error', () => {});
  events.on('completed', ({ jobId, returnvalue }) => outcomes.set(jobId, { state: 'completed', returnvalue }));
  events.on('failed', ({ jobId, failedReason }) => outcomes.set(jobId, { state: 'failed', failedReason }));
  await events.waitUntilReady();
  return {
    iam, config, prefix, broker, producer, store: broker.context.store, redis, logs,
    waitForJob: async (jobId, timeoutMs = 15_000) => (await eventually(() => outcomes.get(jobId), timeoutMs))!,
    async close() {
      await events.close();
      eventsConnection.disconnect();
      await producer.close();
      await broker.close();
      await cleanupPrefix(redis, prefix);
      redis.disconnect();
      if (ownIam) await iam.close();
    },
  };
}
