import type { Job, Queue } from 'bullmq';
import type { RedisClient } from './redis.js';
import { countUsersByState } from './token-store.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TOKEX_ERROR_CODES } from './errors.js';
import type { KeyLayout } from './keys.js';
import { TIMED_OUT, withinMs } from './timing.js';

/**
 * The broker's Prometheus metrics: one registry per broker context, fed by the roles (worker
 * events, IAM calls, Redis connection errors) and by collectors that read Redis at scrape time.
 * Served by the producer role at `GET /metrics` (docs/http-api.md, "Metrics").
 */

/** Every reason code a failed job can carry; anything else is counted as `unknown` (bounded label set). */
const REASON_CODES: ReadonlySet<string> = new Set<string>(TOKEX_ERROR_CODES);

/** Longest a scrape waits for one Redis read. */
const SCRAPE_READ_TIMEOUT_MS = 1000;

/** Latency buckets (seconds) from 1 ms to 1 min: exchanges take milliseconds unless retried. */
const LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The reason code at the start of a BullMQ failure reason (`code: message`), or `unknown`. */
export function reasonCode(failedReason: string | undefined): string {
  if (!failedReason) return 'unknown';
  const colon = failedReason.indexOf(':');
  const code = colon > 0 ? failedReason.slice(0, colon) : failedReason;
  if (REASON_CODES.has(code)) return code;
  if (failedReason.includes('stalled more than allowable limit')) return 'stalled';
  return 'unknown';
}

/** What the scrape-time collectors read. */
export interface MetricsSources {
  redis: RedisClient;
  keys: KeyLayout;
  /** Queues whose job counts are exported, by name. */
  queues: Queue[];
}

/** Options of {@link TokexMetrics}. */
export interface TokexMetricsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop lag). @defaultValue true */
  processMetrics?: boolean;
  /** Users by state needs a SCAN of every metadata key: computed at most this often. @defaultValue 30000 */
  usersByStateCacheMs?: number;
}

/** The broker's metrics in one registry; see the module comment. */
export class TokexMetrics {
  readonly registry = new Registry();
  /** Jobs finished or retried, by queue, outcome and reason code. */
  readonly jobs: Counter<'queue' | 'outcome' | 'reason'>;
  /** Receipt (job.data.receivedAt, else the job's creation) to completion, by queue. */
  readonly jobLatency: Histogram<'queue'>;
  /** IAM HTTP calls by call and status (0 = network error). */
  readonly iamCalls: Counter<'call' | 'status'>;
  readonly iamLatency: Histogram<'call'>;
  /** Requests to `POST /v1/exchanges` by outcome and error code. */
  readonly exchangeRequests: Counter<'outcome' | 'code'>;
  /** Redis connection errors and failed commands seen by this process. */
  readonly redisErrors: Counter<'source'>;
  private sources?: MetricsSources;
  private usersCache?: { atMs: number; counts: Map<string, number> };
  private census?: Promise<void>;
  private readonly usersByStateCacheMs: number;

  constructor(options: TokexMetricsOptions = {}) {
    const registers = [this.registry];
    this.usersByStateCacheMs = options.usersByStateCacheMs ?? 30_000;
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'tokex_' });
    this.jobs = new Counter({
      name: 'tokex_jobs_total',
      help: 'Jobs processed by this process, by queue, outcome (completed, failed, retried) and reason code',
      labelNames: ['queue', 'outcome', 'reason'],
      registers,
    });
    this.jobLatency = new Histogram({
      name: 'tokex_job_latency_seconds',
      help: 'Time from receipt of the job to tokens stored, by queue (exchange, refresh)',
      labelNames: ['queue'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.iamCalls = new Counter({
      name: 'tokex_iam_requests_total',
      help: 'HTTP calls to the IAM by call (exchange, refresh, revoke) and status code (0: network error)',
      labelNames: ['call', 'status'],
      registers,
    });
    this.iamLatency = new Histogram({
      name: 'tokex_iam_request_duration_seconds',
      help: 'Duration of HTTP calls to the IAM by call',
      labelNames: ['call'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.exchangeRequests = new Counter({
      name: 'tokex_http_exchange_requests_total',
      help: 'POST /v1/exchanges requests by outcome (accepted, rejected) and error code',
      labelNames: ['outcome', 'code'],
      registers,
    });
    this.redisErrors = new Counter({
      name: 'tokex_redis_errors_total',
      help: 'Redis connection errors and failed commands seen by this process',
      labelNames: ['source'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'tokex_users',
      help: 'Users with stored metadata, by token state (active, reauth_required, revoked)',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = await self.usersByState();
        for (const state of ['active', 'reauth_required', 'revoked']) this.set({ state }, counts.get(state) ?? 0);
      },
    });
    new Gauge({
      name: 'tokex_tokens_due_next_minute',
      help: 'Users whose refresh is due within the next 60 s (overdue included)',
      registers,
      async collect() {
        if (!self.sources) return;
        const { redis, keys } = self.sources;
        this.set(await self.guard(() => redis.zcount(keys.due, '-inf', Date.now() + 60_000), 0));
      },
    });
    new Gauge({
      name: 'tokex_queue_jobs',
      help: 'Jobs in each queue by BullMQ state',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        for (const queue of self.sources?.queues ?? []) {
          const counts = await self.guard(
            () => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'),
            {} as Record<string, number>,
          );
          for (const [state, n] of Object.entries(counts)) this.set({ queue: queue.name, state }, n);
        }
      },
    });
  }

  /** Sets what the scrape-time gauges read (the producer role does it when it starts). */
  setSources(sources: MetricsSources): void {
    this.sources = sources;
  }

  /** The IamClient `onCall` hook. */
  readonly observeIamCall = (event: { call: string; status: number; durationMs: number }): void => {
    this.iamCalls.inc({ call: event.call, status: String(event.status) });
    this.iamLatency.observe({ call: event.call }, event.durationMs / 1000);
  };

  /**
   * Counts a worker's jobs: listen to its `completed` and `failed` events. A `failed` event for a
   * job that will be retried counts as `retried`; the last one as `failed`.
   */
  watchWorker(queue: string, worker: {
    on(event: 'completed', listener: (job: Job) => void): unknown;
    on(event: 'failed', listener: (job: Job | undefined, err: Error) => void): unknown;
  }): void {
    worker.on('completed', (job) => {
      this.jobs.inc({ queue, outcome: 'completed', reason: '' });
      const receivedAtMs = typeof job.data?.receivedAt === 'number' ? job.data.receivedAt : job.timestamp;
      if (receivedAtMs > 0) this.jobLatency.observe({ queue }, Math.max(0, Date.now() - receivedAtMs) / 1000);
    });
    worker.on('failed', (job, err) => {
      const final = !job || err?.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      this.jobs.inc({ queue, outcome: final ? 'failed' : 'retried', reason: reasonCode(err?.message) });
    });
  }

  /** Counts a Redis connection's errors. */
  watchRedis(source: string, redis: RedisClient): void {
    redis.on('error', () => this.redisErrors.inc({ source }));
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private async usersByState(): Promise<Map<string, number>> {
    const now = Date.now();
    if (this.usersCache && now - this.usersCache.atMs < this.usersByStateCacheMs) return this.usersCache.counts;
    if (!this.sources) return new Map();
    const { redis, keys } = this.sources;
    // Single flight: one census at a time, and it fills the cache when it ends even if the scrape
    // that started it stopped waiting (a census is O(users); scrapes must not pile them up).
    this.census ??= countUsersByState(redis, keys)
      .then((counts) => {
        this.usersCache = { atMs: Date.now(), counts: new Map(Object.entries(counts)) };
      })
      .catch(() => {
        this.redisErrors.inc({ source: 'metrics' });
      })
      .finally(() => {
        this.census = undefined;
      });
    const census = this.census;
    await this.guard(() => census, undefined);
    return this.usersCache?.counts ?? new Map();
  }

  /** A scrape must neither fail nor hang because Redis is down: count the error, report the fallback. */
  private async guard<T>(read: () => Promise<T>, fallback: T): Promise<T> {
    try {
      const result = await withinMs(read(), SCRAPE_READ_TIMEOUT_MS);
      if (result !== TIMED_OUT) return result;
    } catch {
      // counted below, like a timeout
    }
    this.redisErrors.inc({ source: 'metrics' });
    return fallback;
  }
}
