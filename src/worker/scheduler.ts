import { Queue, Worker } from 'bullmq';
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import { REFRESH_QUEUE } from '../shared/job-contract.js';
import type { KeyLayout } from '../shared/keys.js';
import { scripts } from '../shared/scripts.js';
import { REFRESH_JOB_NAME, refreshJobOptions, type RefreshJobData } from './refresh-worker.js';
import { closeWorker } from './shutdown.js';

/** Queue of the scheduler's tick jobs (one BullMQ Job Scheduler fills it). */
export const REFRESH_TICK_QUEUE = 'refresh-tick';
/** Id of the one Job Scheduler; upserting it again (any process, any time) changes nothing. */
export const REFRESH_TICK_SCHEDULER_ID = 'refresh-tick';
/** Largest `addBulk` call: larger batches cost the client a lot of CPU. */
export const ADD_BULK_CHUNK = 1000;

/** Settings of one tick. */
export interface TickOptions {
  /** Any connection (the due index is read with a Lua script). */
  redis: RedisClient;
  keys: KeyLayout;
  /** The `refresh` queue the jobs go to. */
  refreshQueue: Queue;
  /** Most users claimed per tick. @defaultValue 10000 */
  maxPerTick?: number;
  /** A claimed user is not read again for this long unless its refresh rewrote its due time. @defaultValue 60000 */
  leaseMs?: number;
  nowMs?: number;
}

/** What a tick did. */
export interface TickResult {
  /** Users that were due and got a (deduplicated) refresh job. */
  claimed: number;
}

/**
 * One scheduler tick: claims the due users from the due index (`claim-due-1.lua`: ZRANGE BYSCORE
 * -inf now LIMIT, O(log N + due)) and enqueues one refresh job each, deduplicated by user id, in
 * chunks of {@link ADD_BULK_CHUNK}. If enqueueing fails after the claim, the lease brings the users back.
 */
export async function runTick(options: TickOptions): Promise<TickResult> {
  const nowMs = options.nowMs ?? Date.now();
  const leaseMs = options.leaseMs ?? 60_000;
  const flat = await scripts.claimDue.run<string[]>(
    options.redis,
    [options.keys.due],
    [nowMs, options.maxPerTick ?? 10_000, nowMs + leaseMs],
  );
  const jobs: { name: string; data: RefreshJobData; opts: ReturnType<typeof refreshJobOptions> }[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const userId = flat[i];
    jobs.push({ name: REFRESH_JOB_NAME, data: { v: 1, userId, dueAtMs: Number(flat[i + 1]) }, opts: refreshJobOptions(userId) });
  }
  for (let i = 0; i < jobs.length; i += ADD_BULK_CHUNK) {
    await options.refreshQueue.addBulk(jobs.slice(i, i + ADD_BULK_CHUNK));
  }
  return { claimed: jobs.length };
}

/** Options of {@link RefreshScheduler}. */
export interface RefreshSchedulerOptions {
  /** A connection with `maxRetriesPerRequest: null`. */
  connection: RedisClient;
  prefix: string;
  keys: KeyLayout;
  logger: Logger;
  /** Tick interval (REFRESH_TICK_MS). @defaultValue 5000 */
  tickMs?: number;
  /** Most users claimed per tick. @defaultValue 10000 */
  maxPerTick?: number;
  /** How long shutdown waits for a running tick. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
}

/** Lock of a tick job; a tick takes milliseconds, so a dead holder is noticed within seconds. */
const TICK_LOCK_MS = 5000;

/**
 * The refresh scheduler: one BullMQ Job Scheduler (`upsertJobScheduler`, idempotent by id, so every
 * instance may upsert it at startup) fires a `tick` job every `tickMs` on the `refresh-tick` queue,
 * and this instance's tick worker (concurrency 1) runs {@link runTick}. Any number of instances may
 * run: each tick job is processed by one of them, and per-user deduplication makes a rare double
 * tick harmless.
 */
export class RefreshScheduler {
  readonly tickQueue: Queue;
  readonly refreshQueue: Queue;
  readonly worker: Worker;
  private readonly tickMs: number;
  private readonly leaseMs: number;
  private watchdog?: NodeJS.Timeout;

  constructor(private readonly options: RefreshSchedulerOptions) {
    this.tickMs = options.tickMs ?? 5000;
    // Long enough that a queued job normally runs first; short enough that a lost job is retried soon.
    this.leaseMs = Math.max(60_000, this.tickMs * 10);
    const { connection, prefix } = options;
    this.tickQueue = new Queue(REFRESH_TICK_QUEUE, { connection, prefix });
    this.refreshQueue = new Queue(REFRESH_QUEUE, { connection, prefix });
    for (const queue of [this.tickQueue, this.refreshQueue]) {
      queue.on('error', (err) => options.logger.debug({ err }, 'queue connection error'));
    }
    this.worker = new Worker(
      REFRESH_TICK_QUEUE,
      async () => {
        const result = await runTick({
          redis: connection, keys: options.keys, refreshQueue: this.refreshQueue,
          maxPerTick: options.maxPerTick, leaseMs: this.leaseMs,
        });
        if (result.claimed > 0) options.logger.debug({ claimed: result.claimed }, 'refresh tick enqueued due users');
        return result;
      },
      {
        connection, prefix, concurrency: 1, autorun: false, removeOnComplete: { count: 0 }, removeOnFail: { count: 100 },
        // A tick is short: a tick job held by a killed process comes back quickly.
        lockDuration: TICK_LOCK_MS, stalledInterval: TICK_LOCK_MS / 2,
      },
    );
    this.worker.on('error', (err) => options.logger.error({ err }, 'refresh tick worker error'));
    this.worker.on('failed', (job, err) => options.logger.warn({ jobId: job?.id, reason: err.message }, 'refresh tick failed; the next one retries'));
  }

  /**
   * Upserts the Job Scheduler (idempotent) and starts this instance's tick worker. The upsert is
   * repeated every few ticks: BullMQ schedules the next tick only after a worker took the current
   * one, so a process killed in between would otherwise stop the ticks until stall detection.
   */
  async start(): Promise<void> {
    await this.upsert();
    this.watchdog = setInterval(() => {
      this.upsert().catch((err: unknown) => this.options.logger.debug({ err }, 'could not re-upsert the refresh tick scheduler'));
    }, Math.max(this.tickMs * 5, 2000));
    this.watchdog.unref();
    void this.worker.run();
    await this.worker.waitUntilReady();
  }

  private upsert(): Promise<unknown> {
    return this.tickQueue.upsertJobScheduler(
      REFRESH_TICK_SCHEDULER_ID,
      { every: this.tickMs },
      { name: 'tick', data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }

  /** Stops this instance's tick worker. The Job Scheduler stays: other instances keep ticking. */
  async close(): Promise<void> {
    clearInterval(this.watchdog);
    await closeWorker(this.worker, this.options.shutdownTimeoutMs ?? 30_000, this.options.logger);
    await Promise.all([this.tickQueue.close(), this.refreshQueue.close()]);
  }
}
