import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import { isEnvelopeString, SUBJECT_TOKEN_AAD, type KeyRing } from '../shared/crypto.js';
import { isTokexError, TokexError } from '../shared/errors.js';
import type { IamClient } from '../shared/iam-client.js';
import { accessClaimsOf, type TokenResponse } from '../shared/iam-outcome.js';
import {
  EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE, exchangeBackoffMs, exchangeJobDataSchema, TOKEX_BACKOFF,
  type ExchangeJobData, type ExchangeJobResult,
} from '../shared/job-contract.js';
import { retryRedisWrite } from '../shared/retry-write.js';
import { readJwtClaims } from '../shared/subject-token.js';
import type { TokenStore } from '../shared/token-store.js';
import { AlertThrottle } from './alert-throttle.js';
import { closeWorker } from './shutdown.js';

/** Options of {@link ExchangeWorker}. */
export interface ExchangeWorkerOptions {
  /** A connection with `maxRetriesPerRequest: null` (see createWorkerConnection). */
  connection: RedisClient;
  prefix: string;
  keyRing: KeyRing;
  iam: IamClient;
  store: TokenStore;
  logger: Logger;
  /** Jobs processed at once. @defaultValue 50 */
  concurrency?: number;
  /** Deadline of jobs that carry none and whose token has no `exp`. @defaultValue 300 */
  defaultDeadlineSeconds?: number;
  /** Accept job data with a plaintext subject token (re-encrypted in place at once). @defaultValue false */
  allowPlaintextJobs?: boolean;
  /** Failed jobs are kept this long and at most this many, so operators can see why. */
  failedRetention?: { ageSeconds: number; count: number };
  /** How long shutdown waits for active jobs before cancelling them. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
}

/** The fields of exchange job data; anything else is removed from a refused job. */
const CONTRACT_FIELDS = Object.keys(exchangeJobDataSchema.shape);

/** Stall detection tuned for short-lived subject tokens: a crashed worker's jobs return within ~15 s. */
const LOCK_DURATION_MS = 10_000;
const STALLED_INTERVAL_MS = 5_000;

/**
 * The BullMQ worker of the `exchange` queue: decrypts the subject token, exchanges it at the IAM,
 * checks whose tokens came back and stores them. Failures map to BullMQ outcomes in one place
 * ({@link ExchangeWorker.fail}): transient → retry with backoff within the deadline, 429 → slow the
 * whole queue down, anything else → fail at once with a reason code.
 */
export class ExchangeWorker {
  readonly worker: Worker<ExchangeJobData, ExchangeJobResult>;
  private readonly queue: Queue;
  private readonly alerts = new AlertThrottle();
  private readonly defaultDeadlineMs: number;

  constructor(private readonly options: ExchangeWorkerOptions) {
    this.defaultDeadlineMs = (options.defaultDeadlineSeconds ?? 300) * 1000;
    // Used only to apply the IAM's Retry-After to the whole queue.
    this.queue = new Queue(EXCHANGE_QUEUE, { connection: options.connection, prefix: options.prefix });
    this.queue.on('error', (err) => options.logger.debug({ err }, 'queue connection error'));
    this.worker = new Worker<ExchangeJobData, ExchangeJobResult>(
      EXCHANGE_QUEUE,
      (job, _token, signal) => this.process(job, signal),
      {
        connection: options.connection,
        prefix: options.prefix,
        concurrency: options.concurrency ?? 50,
        autorun: false,
        lockDuration: LOCK_DURATION_MS,
        stalledInterval: STALLED_INTERVAL_MS,
        maxStalledCount: 2,
        // A limiter must exist for queue.rateLimit() (429 handling) to take effect; this one never binds.
        limiter: { max: 1_000_000, duration: 1000 },
        // Jobs from foreign producers get the same retention as ours (their outcome stays queryable).
        removeOnComplete: EXCHANGE_JOB_OPTIONS.removeOnComplete as { age: number; count: number },
        removeOnFail: {
          age: options.failedRetention?.ageSeconds ?? 7 * 86_400,
          count: options.failedRetention?.count ?? 10_000,
        },
        settings: {
          backoffStrategy: (attemptsMade, type) => (type === TOKEX_BACKOFF || type === 'exponential' ? exchangeBackoffMs(attemptsMade) : 1000),
        },
      },
    );
    this.worker.on('error', (err) => options.logger.error({ err }, 'exchange worker error'));
    this.worker.on('failed', (job, err) => {
      if (job) options.logger.info({ jobId: job.id, attemptsMade: job.attemptsMade, reason: err.message }, 'exchange job failed');
    });
  }

  /** Starts fetching jobs. */
  start(): void {
    void this.worker.run();
  }

  /** Stops fetching, waits up to the shutdown timeout for active jobs, then cancels them. */
  async close(): Promise<void> {
    await closeWorker(this.worker, this.options.shutdownTimeoutMs ?? 30_000, this.options.logger);
    await this.queue.close();
  }

  private async process(job: Job<ExchangeJobData, ExchangeJobResult>, signal?: AbortSignal): Promise<ExchangeJobResult> {
    const log = this.options.logger.child({ jobId: job.id });
    const parsed = exchangeJobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      await this.scrubPlaintext(job);
      throw new UnrecoverableError('job_data_invalid: job data does not match the exchange job contract (README, "Job format")');
    }
    const data = parsed.data;
    let subjectToken: string;
    try {
      subjectToken = await this.openSubjectToken(job, data);
    } catch (err) {
      throw await this.fail(job, err, Number.POSITIVE_INFINITY, log);
    }
    const deadlineMs = this.deadlineMs(data, subjectToken);
    if (Date.now() >= deadlineMs) {
      throw new UnrecoverableError('subject_token_expired: the job was picked up after its subject token expired');
    }

    let tokens: TokenResponse;
    try {
      tokens = await this.options.iam.exchange(subjectToken, signal);
    } catch (err) {
      throw await this.fail(job, err, deadlineMs, log);
    }
    const issuedAtMs = Date.now();
    const accessClaims = accessClaimsOf(tokens);
    const sub = typeof accessClaims?.sub === 'string' ? accessClaims.sub : undefined;
    if (sub !== undefined && data.userId !== undefined && sub !== data.userId) {
      // Not revoked at the IAM: with Keycloak that could end the real user's stored session too.
      log.warn({ claimedUserId: data.userId, sub }, 'producer claimed another user than the IAM returned; nothing stored');
      throw new UnrecoverableError('user_mismatch: the exchanged token belongs to another user than the job\'s userId');
    }
    const userId = sub ?? data.userId;
    if (userId === undefined) {
      throw new UnrecoverableError('user_id_invalid: the IAM returned no JWT with a sub and the job has no userId');
    }
    const username = typeof accessClaims?.preferred_username === 'string' ? accessClaims.preferred_username : undefined;
    try {
      const { version, status } = await retryRedisWrite(
        () => this.options.store.save({ userId, tokens, issuedAtMs, username, receivedAtMs: data.receivedAt }),
        { logger: log, what: `tokens of ${userId}` },
      );
      log.info({ userId, version, offline: status.offline, refreshable: status.refreshable }, 'tokens stored');
      return { userId, version, accessExpiresAtMs: status.accessExpiresAtMs, offline: status.offline, refreshable: status.refreshable };
    } catch (err) {
      if (isTokexError(err, 'revoked_meanwhile')) {
        await this.discard(tokens, log);
        throw new UnrecoverableError(`${err.toReason()}; the new session was revoked at the IAM`);
      }
      if (isTokexError(err, 'stale_write')) {
        // A newer exchange for this user won: its tokens stay, this job is done.
        const current = await this.options.store.status(userId);
        log.info({ userId }, 'a newer token set was already stored; keeping it');
        return {
          userId, version: current?.version ?? 0, accessExpiresAtMs: current?.accessExpiresAtMs ?? 0,
          offline: current?.offline ?? false, refreshable: current?.refreshable ?? false,
        };
      }
      throw err;
    }
  }

  /**
   * Revokes the refresh token of tokens that will not be stored because the user logged out
   * meanwhile (best effort), so the IAM session the exchange made does not outlive the logout.
   */
  private async discard(tokens: TokenResponse, log: Logger): Promise<void> {
    if (!tokens.refreshToken || !this.options.iam.canRevoke) return;
    await this.options.iam.revoke(tokens.refreshToken).catch((err: unknown) => log.warn({ err }, 'could not revoke the discarded session at the IAM'));
  }

  /** The job's deadline: its own, or else the token's `exp`, or else receipt + the default deadline. */
  private deadlineMs(data: ExchangeJobData, subjectToken: string): number {
    if (data.deadlineAt !== undefined) return data.deadlineAt;
    const exp = readJwtClaims(subjectToken)?.exp;
    return typeof exp === 'number' ? exp * 1000 : data.receivedAt + this.defaultDeadlineMs;
  }

  /** Decrypts the job's subject token; a permitted plaintext one is encrypted in place first. */
  private async openSubjectToken(job: Job<ExchangeJobData>, data: ExchangeJobData): Promise<string> {
    if (isEnvelopeString(data.subjectToken)) return this.options.keyRing.openString(data.subjectToken, SUBJECT_TOKEN_AAD);
    if (!this.options.allowPlaintextJobs) {
      await this.scrubPlaintext(job);
      throw new TokexError('plaintext_job_refused', 'the job carries a plaintext subject token and ALLOW_PLAINTEXT_JOBS is off; it was removed from the job');
    }
    const plaintext = data.subjectToken;
    await job.updateData({ ...data, subjectToken: this.options.keyRing.sealToString(plaintext, SUBJECT_TOKEN_AAD) });
    return plaintext;
  }

  /**
   * Rewrites a refused job's data in Redis down to the contract's fields, with a plaintext subject
   * token replaced: whatever a foreign producer put there may be a bearer token.
   */
  private async scrubPlaintext(job: Job<ExchangeJobData>): Promise<void> {
    const data = (job.data ?? {}) as Record<string, unknown>;
    const kept: Record<string, unknown> = {};
    for (const field of CONTRACT_FIELDS) if (field in data) kept[field] = data[field];
    const token = data.subjectToken;
    if (token !== undefined && !(typeof token === 'string' && isEnvelopeString(token))) kept.subjectToken = '[removed]';
    if (Object.keys(data).every((k) => k in kept) && kept.subjectToken === data.subjectToken) return;
    await job.updateData(kept as ExchangeJobData);
  }

  /**
   * Maps a failure to a BullMQ outcome: the error to throw from the processor. Reasons start with
   * the error code and never contain a token.
   */
  private async fail(job: Job, err: unknown, deadlineMs: number, log: Logger): Promise<Error> {
    if (!(err instanceof TokexError)) return err instanceof Error ? err : new Error(String(err));
    const reason = err.toReason();
    const nowMs = Date.now();
    switch (err.code) {
      case 'iam_rate_limited': {
        const waitMs = err.retryAfterMs ?? 1000;
        if (nowMs + waitMs >= deadlineMs) return new UnrecoverableError(`${reason}; the subject token expires before the retry`);
        log.warn({ waitMs }, 'IAM rate limited us; pausing the exchange queue');
        await this.queue.rateLimit(waitMs).catch((e: unknown) => log.error({ err: e }, 'could not apply the rate limit'));
        return Worker.RateLimitError();
      }
      case 'iam_unavailable':
      case 'redis_unavailable':
      case 'aborted': {
        const attempts = job.opts.attempts ?? 1;
        const nextDelayMs = exchangeBackoffMs(job.attemptsMade + 1, () => 0);
        if (job.attemptsMade + 1 >= attempts || nowMs + nextDelayMs >= deadlineMs) {
          return new UnrecoverableError(`${reason}; giving up: no retry left before the subject token expires`);
        }
        return new Error(reason);
      }
      case 'client_misconfigured': {
        const alert = this.alerts.shouldAlert(err.code);
        if (alert) log.error({ status: err.status, iamError: err.iamError, suppressed: alert.suppressed }, `IAM client misconfigured: ${err.message}`);
        return new UnrecoverableError(reason);
      }
      default:
        return new UnrecoverableError(reason);
    }
  }
}
