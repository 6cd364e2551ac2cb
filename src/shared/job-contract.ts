import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The job contract shared by every producer and worker. Services using any BullMQ client can
 * enqueue exchanges by following it (README, "Job format").
 */

/** Queue of subject tokens waiting to be exchanged. */
export const EXCHANGE_QUEUE = 'exchange';
/** Queue of per-user refresh jobs (filled by the scheduler tick). */
export const REFRESH_QUEUE = 'refresh';
/** Name given to exchange jobs (informational; the worker accepts any name). */
export const EXCHANGE_JOB_NAME = 'exchange';
/** Backoff type understood by the exchange worker's backoff strategy. */
export const TOKEX_BACKOFF = 'tokex';

/** Data of an exchange job, version 1. */
export const exchangeJobDataSchema = z.object({
  v: z.literal(1),
  /**
   * The subject token, as a `tkx1.` envelope (crypto.ts, AAD `tokex/subject-token/v1`). A plaintext
   * token is accepted only when the worker runs with ALLOW_PLAINTEXT_JOBS=true, and is then
   * re-encrypted in place before the IAM is called.
   */
  subjectToken: z.string().min(1).max(32 * 1024),
  /** Who the producer says the token belongs to; must equal the exchanged token's `sub`. */
  userId: z.string().min(1).max(256).optional(),
  /** When the producer received the token (ms since epoch). */
  receivedAt: z.number().int().nonnegative(),
  /** After this (ms since epoch) the job fails with `subject_token_expired` without calling the IAM. */
  deadlineAt: z.number().int().nonnegative().optional(),
}).strict(); // an unknown field could hold a plaintext token: refuse the job (and scrub it) instead

/** Data of an exchange job. */
export type ExchangeJobData = z.infer<typeof exchangeJobDataSchema>;

/** What a completed exchange job returns (in Redis and the events stream: never a token). */
export interface ExchangeJobResult {
  userId: string;
  /** Version of the stored token set after the write. */
  version: number;
  accessExpiresAtMs: number;
  offline: boolean;
  refreshable: boolean;
}

/** First retry delay of a transient failure; doubles on each attempt, with jitter. */
export const EXCHANGE_BACKOFF_BASE_MS = 250;
/** Longest single retry delay of a transient failure. */
export const EXCHANGE_BACKOFF_MAX_MS = 30_000;

/**
 * Options every exchange job gets from our producers. Retries are bounded twice: by `attempts` and
 * by the job's deadline (the worker fails a job whose next try would come after it).
 */
export const EXCHANGE_JOB_OPTIONS: JobsOptions = {
  attempts: 20,
  backoff: { type: TOKEX_BACKOFF },
  // Kept a while so `GET /v1/exchanges/:jobId` can still say `completed` (the return value holds no token).
  removeOnComplete: { age: 3600, count: 10_000 },
};

/**
 * Exponential backoff with full jitter: a random delay in [d/2, d] where d = base·2^(attempt-1),
 * capped. Jitter keeps a crowd of failed jobs from retrying in lockstep.
 */
export function exchangeBackoffMs(attemptsMade: number, random = Math.random): number {
  const ceiling = Math.min(EXCHANGE_BACKOFF_MAX_MS, EXCHANGE_BACKOFF_BASE_MS * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
