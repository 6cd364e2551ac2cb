import { config as loadDotenv } from 'dotenv';
import { z } from 'zod';
import { TokexError } from './errors.js';
import { KeyRing } from './crypto.js';
import type { RedisTarget } from './redis.js';

/**
 * The one place that reads the environment. Everything else receives a {@link TokexConfig}.
 * Variable names are a public contract: README's configuration table and `.env.example` list them.
 */

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const optionalUrl = z.preprocess((v) => (v === '' ? undefined : v), z.url({ protocol: /^https?$/ }).optional());

const envSchema = z.object({
  REDIS_URL: z.string().regex(/^rediss?:\/\/[^,]+(,\s*rediss?:\/\/[^,]+)*$/, 'must be redis:// or rediss:// URL(s); several, comma-separated, only as cluster seeds').default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER: bool.default(false),
  TOKEX_PREFIX: z.string().regex(/^[A-Za-z0-9{}._-]{1,64}$/, 'use 1-64 of [A-Za-z0-9{}._-], e.g. tokex or {tokex}').default('tokex'),
  IAM_TOKEN_URL: optionalUrl,
  IAM_CLIENT_ID: z.string().min(1).optional(),
  IAM_CLIENT_SECRET: z.string().min(1).optional(),
  IAM_CLIENT_AUTH: z.enum(['client_secret_post', 'client_secret_basic']).default('client_secret_post'),
  IAM_SCOPE: z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E ]*$/, 'must be space-separated scope tokens').default('offline_access'),
  IAM_AUDIENCE: z.string().optional(),
  IAM_TIMEOUT_MS: intFrom(100, 120_000).default(10_000),
  IAM_REVOCATION_URL: optionalUrl,
  TOKEN_ENCRYPTION_KEYS: z.string({ error: 'required: comma-separated keyId:base64-of-32-bytes (run `tokex keygen`)' }).min(1, 'required: run `tokex keygen`'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  EXCHANGE_CONCURRENCY: intFrom(1, 1000).default(50),
  EXCHANGE_DEFAULT_DEADLINE_SECONDS: intFrom(1, 86_400).default(300),
  ALLOW_PLAINTEXT_JOBS: bool.default(false),
  SHUTDOWN_TIMEOUT_MS: intFrom(0, 600_000).default(30_000),
  FAILED_JOB_RETENTION_SECONDS: intFrom(0, 90 * 86_400).default(7 * 86_400),
  FAILED_JOB_RETENTION_COUNT: intFrom(0, 10_000_000).default(10_000),
  EVENTS_MAX_LEN: intFrom(100, 10_000_000).default(100_000),
  REFRESH_TICK_MS: intFrom(100, 3_600_000).default(5000),
  REFRESH_SKEW_SECONDS: intFrom(0, 86_400).default(60),
  OFFLINE_KEEPALIVE_SECONDS: intFrom(1, 365 * 86_400).default(7 * 86_400),
  REFRESH_ACCESS_TOKENS: z.enum(['eager', 'lazy']).default('eager'),
  REFRESH_CONCURRENCY: intFrom(1, 1000).default(20),
  REFRESH_RATE_PER_SECOND: intFrom(1, 100_000).default(50),
  REAUTH_WEBHOOK_URL: optionalUrl,
  HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HTTP_PORT: intFrom(0, 65_535).default(8080),
  PRODUCER_API_KEYS: z.string().optional(),
  PRODUCER_AUTH: z.enum(['api-key', 'none']).default('api-key'),
  ADMIN_UI: bool.default(true),
});

/** Names of every environment variable the broker reads (for `.env.example` and deployment checks). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/** The broker's whole configuration, typed, with units in the names. */
export interface TokexConfig {
  /** REDIS_URL as given (for a cluster: comma-separated seed node URLs). */
  redisUrl: string;
  /** Where Redis is, for the connection factories in redis.ts. */
  redis: RedisTarget;
  /** Prefix of every Redis key and BullMQ queue; may carry a `{hash tag}` for Redis Cluster. */
  prefix: string;
  iam: {
    tokenUrl?: string;
    clientId?: string;
    clientSecret?: string;
    clientAuth: 'client_secret_post' | 'client_secret_basic';
    /** Space-separated; empty means no scope parameter. */
    scope: string;
    audience?: string;
    timeoutMs: number;
    revocationUrl?: string;
  };
  keyRing: KeyRing;
  logLevel: string;
  exchange: {
    concurrency: number;
    /** Deadline for subject tokens whose expiry is unknown (opaque tokens). */
    defaultDeadlineSeconds: number;
    allowPlaintextJobs: boolean;
  };
  shutdownTimeoutMs: number;
  retention: { failedAgeSeconds: number; failedCount: number; eventsMaxLen: number };
  refresh: {
    tickMs: number;
    skewSeconds: number;
    offlineKeepaliveSeconds: number;
    accessTokens: 'eager' | 'lazy';
    concurrency: number;
    ratePerSecond: number;
    reauthWebhookUrl?: string;
  };
  http: { host: string; port: number; apiKeys: string[]; auth: 'api-key' | 'none'; adminUi: boolean };
}

/** The process environment merged with `.env` (dotenv never overrides what is already set). */
export function readEnvironment(): Record<string, string | undefined> {
  loadDotenv({ quiet: true });
  return { ...process.env };
}

/** Parts of the configuration a role may require beyond the base. */
export type ConfigNeed = 'iam';

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Defaults to `process.env` merged with `.env` (dotenv never overrides what is set). */
  env?: Record<string, string | undefined>;
  /** Extra requirements of the roles being started: `iam` needs the token URL and client credentials. */
  need?: ConfigNeed[];
}

/**
 * Reads and validates the configuration once. Throws `config_invalid` whose message names
 * every bad or missing variable (never echoing secret values).
 */
export function loadConfig(options: LoadConfigOptions = {}): TokexConfig {
  const env = options.env ?? readEnvironment();
  const problems: string[] = [];
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  let keyRing: KeyRing | undefined;
  if (parsed.success) {
    try {
      keyRing = KeyRing.parse(parsed.data.TOKEN_ENCRYPTION_KEYS);
    } catch (err) {
      problems.push(`TOKEN_ENCRYPTION_KEYS: ${(err as Error).message}`);
    }
    if (!parsed.data.REDIS_CLUSTER && parsed.data.REDIS_URL.includes(',')) {
      problems.push('REDIS_URL: several URLs are only accepted as cluster seeds (REDIS_CLUSTER=true)');
    }
    if (parsed.data.REDIS_CLUSTER && !/\{[^}]+\}/.test(parsed.data.TOKEX_PREFIX)) {
      problems.push('TOKEX_PREFIX: with REDIS_CLUSTER=true it must contain a hash tag such as {tokex}, so that every broker key is in one slot');
    }
    if (options.need?.includes('iam')) {
      for (const name of ['IAM_TOKEN_URL', 'IAM_CLIENT_ID', 'IAM_CLIENT_SECRET'] as const) {
        if (!parsed.data[name]) problems.push(`${name}: required by the exchange and refresh workers`);
      }
    }
  }
  if (problems.length > 0 || !parsed.success || !keyRing) {
    throw new TokexError('config_invalid', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
  const e = parsed.data;
  return {
    redisUrl: e.REDIS_URL,
    redis: { url: e.REDIS_URL, cluster: e.REDIS_CLUSTER },
    prefix: e.TOKEX_PREFIX,
    iam: {
      tokenUrl: e.IAM_TOKEN_URL,
      clientId: e.IAM_CLIENT_ID,
      clientSecret: e.IAM_CLIENT_SECRET,
      clientAuth: e.IAM_CLIENT_AUTH,
      scope: e.IAM_SCOPE.trim(),
      audience: e.IAM_AUDIENCE || undefined,
      timeoutMs: e.IAM_TIMEOUT_MS,
      revocationUrl: e.IAM_REVOCATION_URL,
    },
    keyRing,
    logLevel: e.LOG_LEVEL,
    exchange: {
      concurrency: e.EXCHANGE_CONCURRENCY,
      defaultDeadlineSeconds: e.EXCHANGE_DEFAULT_DEADLINE_SECONDS,
      allowPlaintextJobs: e.ALLOW_PLAINTEXT_JOBS,
    },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    retention: {
      failedAgeSeconds: e.FAILED_JOB_RETENTION_SECONDS,
      failedCount: e.FAILED_JOB_RETENTION_COUNT,
      eventsMaxLen: e.EVENTS_MAX_LEN,
    },
    refresh: {
      tickMs: e.REFRESH_TICK_MS,
      skewSeconds: e.REFRESH_SKEW_SECONDS,
      offlineKeepaliveSeconds: e.OFFLINE_KEEPALIVE_SECONDS,
      accessTokens: e.REFRESH_ACCESS_TOKENS,
      concurrency: e.REFRESH_CONCURRENCY,
      ratePerSecond: e.REFRESH_RATE_PER_SECOND,
      reauthWebhookUrl: e.REAUTH_WEBHOOK_URL,
    },
    http: {
      host: e.HTTP_HOST,
      port: e.HTTP_PORT,
      apiKeys: (e.PRODUCER_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean),
      auth: e.PRODUCER_AUTH,
      adminUi: e.ADMIN_UI,
    },
  };
}
