import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import { TokexError } from '../shared/errors.js';
import { REFRESH_QUEUE } from '../shared/job-contract.js';
import type { KeyLayout } from '../shared/keys.js';
import type { RefreshOutcome, UserRefresher } from '../shared/refresh-user.js';
import { AlertThrottle } from './alert-throttle.js';
import { closeWorker } from './shutdown.js';

/** Name of per-user refresh jobs on the `refresh` queue. */
export const REFRESH_JOB_NAME = 'refresh';

/** Data of a refresh job (made by the scheduler tick; never carries a token). */
export interface RefreshJobData {
  v: 1;
  userId: string;
  /** The user's due time when the tick claimed it (ms since epoch), for the logs. */
  dueAtMs: number;
}

/** What a refresh job returns (stored by BullMQ: never a token). */
export interface RefreshJobResult {
  userId: string;
  outcome: RefreshOutcome;
}

/** First retry delay of a transient refresh failure (doubles per attempt, with jitter). */
export const REFRESH_BACKOFF_MS = 1000;
/** After the last attempt fails, the user is due again this much later (the next ticks pick it up). */
export const REFRESH_RETRY_LATER_MS = 60_000;
/** After a configuration error, the user is due again this much later. */
export const REFRESH_MISCONFIGURED_RETRY_MS = 5 * 60_000;

/**
 * Options of every refresh job. Deduplication by user id means a user never has two refresh jobs
 * waiting: further adds are ignored until the job completes or finally fails (BullMQ "simple" mode),
 * including while it is active or waiting for a retry.
 */
export function refreshJobOptions(userId: string): JobsOptions {
  return {
    attempts: 5,
    backoff: { type: 'exponential', delay: REFRESH_BACKOFF_MS, jitter: 0.5 },
    deduplication: { id: userId },
    removeOnComplete: true,
    removeOnFail: { age: 86_400, count: 1000 },
  };
}

/** Options of {@link RefreshWorker}. */
export interface RefreshWorkerOptions {
  /** A connection with `maxRetriesPerRequest: null`. */
  connection: RedisClient;
  prefix: string;
  keys: KeyLayout;
  refresher: UserRefresher;
  logger: Logger;
  /** Refresh jobs processed at once (REFRESH_CONCURRENCY). @defaultValue 20 */
  concurrency?: number;
  /** Largest number of refresh jobs started per second, toward the IAM (REFRESH_RATE_PER_SECOND). @defaultValue 50 */
  ratePerSecond?: number;
  /** How long shutdown waits for active jobs before cancelling them. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
}

/**
 * The worker of the `refresh` queue, separate from the exchange worker (own queue, concurrency and
 * rate limit) so a refresh backlog never delays an exchange. Each job runs the rotation-safe refresh
 * of one user ({@link UserRefresher.ensure} with need `due`). Outcomes: 429 → the whole queue pauses
 * for Retry-After; transient → retry with backoff, then the user is due again a minute later;
 * `invalid_grant` → the user is marked `reauth_required` (the job completes: nothing to retry).
 */
export class RefreshWorker {
  readonly worker: Worker<RefreshJobData, RefreshJobResult>;
  private readonly queue: Queue;
  private readonly alerts = new AlertThrottle();

  constructor(private readonly options: RefreshWorkerOptions) {
    this.queue = new Queue(REFRESH_QUEUE, { connection: options.connection, prefix: options.prefix });
    this.queue.on('error', (err) => options.logger.debug({ err }, 'queue connection error'));
    this.worker = new Worker<RefreshJobData, RefreshJobResult>(
      REFRESH_QUEUE,
      (job, _token, signal) => this.process(job, signal),
      {
        connection: options.connection,
        prefix: options.prefix,
        concurrency: options.concurrency ?? 20,
        autorun: false,
        // Also what makes queue.rateLimit() (429 handling) take effect.
        limiter: { max: options.ratePerSecond ?? 50, duration: 1000 },
      },
    );
    this.worker.on('error', (err) => options.logger.error({ err }, 'refresh worker error'));
    this.worker.on('failed', (job, err) => {
      if (job) options.logger.info({ jobId: job.id, userId: job.data?.userId, attemptsMade: job.attemptsMade, reason: err.message }, 'refresh job failed');
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

  private async process(job: Job<RefreshJobData, RefreshJobResult>, signal?: AbortSignal): Promise<RefreshJobResult> {
    const userId = job.data?.userId;
    if (typeof userId !== 'string' || userId === '') throw new UnrecoverableError('job_data_invalid: a refresh job needs a userId');
    try {
      const { outcome } = await this.options.refresher.ensure(userId, { kind: 'due' }, signal);
      if (outcome === 'not_found' || outcome === 'not_refreshable' || outcome === 'inactive') {
        // Nothing left to refresh: an index entry without tokens must not come back every tick.
        await this.options.refresher.store.unscheduleIfIdle(userId);
      }
      return { userId, outcome };
    } catch (err) {
      throw await this.fail(job, userId, err);
    }
  }

  /** Maps a failure to a BullMQ outcome: the error to throw from the processor. */
  private async fail(job: Job<RefreshJobData>, userId: string, err: unknown): Promise<Error> {
    const log = this.options.logger.child({ jobId: job.id, userId });
    if (!(err instanceof TokexError)) {
      await this.deferUser(userId, REFRESH_RETRY_LATER_MS, log);
      return new UnrecoverableError(`unexpected: ${(err as Error)?.message ?? String(err)}`);
    }
    const reason = err.toReason();
    switch (err.code) {
      case 'iam_rate_limited': {
        const waitMs = err.retryAfterMs ?? 1000;
        log.warn({ waitMs }, 'IAM rate limited us; pausing the refresh queue');
        await this.queue.rateLimit(waitMs).catch((e: unknown) => log.error({ err: e }, 'could not apply the rate limit'));
        return Worker.RateLimitError();
      }
      case 'iam_unavailable':
      case 'redis_unavailable':
      case 'aborted':
      case 'lock_timeout':
      case 'refresh_in_flight': {
        if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
          await this.deferUser(userId, REFRESH_RETRY_LATER_MS, log);
          return new UnrecoverableError(`${reason}; giving up for now, due again in ${REFRESH_RETRY_LATER_MS} ms`);
        }
        return new Error(reason);
      }
      case 'client_misconfigured': {
        const alert = this.alerts.shouldAlert(err.code);
        if (alert) log.error({ status: err.status, iamError: err.iamError, suppressed: alert.suppressed }, `IAM client misconfigured: ${err.message}`);
        await this.deferUser(userId, REFRESH_MISCONFIGURED_RETRY_MS, log);
        return new UnrecoverableError(reason);
      }
      default:
        await this.deferUser(userId, REFRESH_RETRY_LATER_MS, log);
        return new UnrecoverableError(reason);
    }
  }

  /**
   * Keeps a user whose refresh failed in the schedule, later: only if still indexed (XX) and never
   * earlier than what is there (GT), so a newer schedule from an exchange wins.
   */
  private async deferUser(userId: string, delayMs: number, log: Logger): Promise<void> {
    try {
      await this.options.connection.zadd(this.options.keys.due, 'XX', 'GT', Date.now() + delayMs, userId);
    } catch (err) {
      // The claim lease still brings the user back.
      log.warn({ err }, 'could not defer the user in the due index');
    }
  }
}
