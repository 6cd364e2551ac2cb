import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { loadConfig } from '../shared/config.js';
import { SUBJECT_TOKEN_AAD, type KeyRing } from '../shared/crypto.js';
import { TokexError } from '../shared/errors.js';
import {
  EXCHANGE_JOB_NAME, EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE, type ExchangeJobData,
} from '../shared/job-contract.js';
import {
  asRedisError, createFastFailConnection, waitUntilReady, type RedisClient, type RedisTarget,
} from '../shared/redis.js';
import { validateSubjectToken, validateUserId } from '../shared/subject-token.js';
import { TIMED_OUT, withinMs } from '../shared/timing.js';

/** Options of {@link TokenProducer}. */
export interface TokenProducerOptions {
  /** A Redis URL or target (cluster), or an ioredis connection to share (made by createFastFailConnection). */
  redis: string | RedisTarget | RedisClient;
  /** Key and queue prefix. @defaultValue 'tokex' */
  prefix?: string;
  /** Encrypts subject tokens before they enter Redis. */
  keyRing: KeyRing;
  /** Deadline of jobs whose subject token has no readable `exp`. @defaultValue 300 */
  defaultDeadlineSeconds?: number;
  /** How long an enqueue may wait for Redis before failing with `redis_unavailable`. @defaultValue 2000 */
  enqueueTimeoutMs?: number;
  /** Approximate maximum length of the queue's events stream. @defaultValue 100000 */
  eventsMaxLen?: number;
}

/** What a producer passes in. */
export interface EnqueueExchangeInput {
  /** The user's access token as received (JWT or opaque). */
  subjectToken: string;
  /** The user it belongs to, if known; the exchange fails with `user_mismatch` if the IAM disagrees. */
  userId?: string;
}

/**
 * Hands subject tokens to the broker: validates them, encrypts them and enqueues an exchange job.
 * Bad input throws a {@link TokexError} (`subject_token_missing`, `subject_token_too_large`,
 * `subject_token_malformed`, `subject_token_expired`, `user_id_invalid`, `user_mismatch`) and
 * enqueues nothing; an unreachable Redis throws `redis_unavailable` within `enqueueTimeoutMs`.
 */
export class TokenProducer {
  /** The BullMQ queue, for callers that want its events or counts. */
  readonly queue: Queue<ExchangeJobData>;
  private readonly redis: RedisClient;
  private readonly ownsConnection: boolean;
  private readonly keyRing: KeyRing;
  private readonly defaultDeadlineMs: number;
  private readonly enqueueTimeoutMs: number;
  /** One shared wait for Redis while it is not ready (single flight: one listener, not one per call). */
  private pendingReady?: Promise<void>;

  constructor(options: TokenProducerOptions) {
    const given = options.redis;
    const isTarget = typeof given === 'string' || !('status' in given);
    this.ownsConnection = isTarget;
    this.redis = isTarget ? createFastFailConnection(given as string | RedisTarget) : (given as RedisClient);
    // An unreachable Redis is reported per call; keep the process up.
    this.redis.on('error', () => {});
    this.keyRing = options.keyRing;
    this.defaultDeadlineMs = (options.defaultDeadlineSeconds ?? 300) * 1000;
    this.enqueueTimeoutMs = options.enqueueTimeoutMs ?? 2000;
    this.queue = new Queue<ExchangeJobData>(EXCHANGE_QUEUE, {
      connection: this.redis,
      prefix: options.prefix ?? 'tokex',
      streams: { events: { maxLen: options.eventsMaxLen ?? 100_000 } },
    });
    this.queue.on('error', () => {});
  }

  /** A producer configured from the environment (REDIS_URL, TOKEX_PREFIX, TOKEN_ENCRYPTION_KEYS, ...). */
  static fromEnv(env?: Record<string, string | undefined>): TokenProducer {
    const config = loadConfig({ env });
    return new TokenProducer({
      redis: config.redis,
      prefix: config.prefix,
      keyRing: config.keyRing,
      defaultDeadlineSeconds: config.exchange.defaultDeadlineSeconds,
      eventsMaxLen: config.retention.eventsMaxLen,
    });
  }

  /** Validates, encrypts and enqueues one exchange; resolves with the job id once it is in Redis. */
  async enqueueExchange(input: EnqueueExchangeInput): Promise<{ jobId: string }> {
    if (input === null || typeof input !== 'object') throw new TokexError('invalid_input', 'expected { subjectToken, userId? }');
    const nowMs = Date.now();
    const facts = validateSubjectToken(input.subjectToken, nowMs);
    const userId = validateUserId(input.userId);
    if (userId !== undefined && facts.subject !== undefined && facts.subject !== userId) {
      throw new TokexError('user_mismatch', 'userId differs from the subject token\'s sub');
    }
    const data: ExchangeJobData = {
      v: 1,
      subjectToken: this.keyRing.sealToString(input.subjectToken, SUBJECT_TOKEN_AAD),
      receivedAt: nowMs,
      deadlineAt: facts.expiresAtMs ?? nowMs + this.defaultDeadlineMs,
    };
    if (userId !== undefined) data.userId = userId;
    const jobId = randomUUID();
    await this.withDeadline(jobId, async () => {
      await this.ready();
      await this.queue.add(EXCHANGE_JOB_NAME, data, { ...EXCHANGE_JOB_OPTIONS, jobId });
    });
    return { jobId };
  }

  /** Closes the queue (and the connection when the producer opened it). */
  async close(): Promise<void> {
    await this.queue.close();
    if (this.ownsConnection) this.redis.disconnect();
  }

  private ready(): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    this.pendingReady ??= waitUntilReady(this.redis, this.enqueueTimeoutMs).finally(() => {
      this.pendingReady = undefined;
    });
    return this.pendingReady;
  }

  private async withDeadline(jobId: string, work: () => Promise<void>): Promise<void> {
    let outcome: void | typeof TIMED_OUT;
    try {
      outcome = await withinMs(work(), this.enqueueTimeoutMs);
    } catch (err) {
      throw asRedisError(err);
    }
    if (outcome === TIMED_OUT) {
      throw new TokexError('redis_unavailable', `enqueue did not finish within ${this.enqueueTimeoutMs} ms (job ${jobId} may still be enqueued)`);
    }
  }
}
