import { Job } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { isTokexError, TokexError } from '../../../shared/errors.js';
import type { ExchangeJobResult } from '../../../shared/job-contract.js';
import { reasonCode } from '../../../shared/metrics.js';
import { asRedisError } from '../../../shared/redis.js';
import { sendError } from '../errors.js';
import type { HttpApiDeps } from '../server.js';

/** Longest `?wait=` a client may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 30;

/** The states a client sees; BullMQ's delayed, prioritized and waiting-children count as waiting. */
export type ExchangeState = 'waiting' | 'active' | 'completed' | 'failed';

/** Body of `GET /v1/exchanges/:jobId`. */
export interface ExchangeStatusBody {
  jobId: string;
  state: ExchangeState;
  userId?: string;
  /** Reason code of a failed job. */
  error?: string;
  /** The failure reason's text (never a token). */
  message?: string;
}

const ALLOWED_FIELDS = new Set(['subjectToken', 'userId']);
const security = [{ apiKey: [] }];
const errorResponses = {
  400: { $ref: 'ErrorBody#' }, 401: { $ref: 'ErrorBody#' }, 503: { $ref: 'ErrorBody#' },
};

/** `POST /v1/exchanges` and `GET /v1/exchanges/:jobId`. */
export function registerExchangeRoutes(app: FastifyInstance, deps: HttpApiDeps): void {
  const { producer, ctx } = deps;
  const accepted = ctx.metrics.exchangeRequests.labels({ outcome: 'accepted', code: '' });

  app.post('/v1/exchanges', {
    schema: {
      summary: 'Enqueue a subject token for exchange',
      description: 'Validates and encrypts the token, enqueues an exchange job and answers at once; the IAM is called by the worker.',
      security,
      body: {
        type: 'object',
        required: ['subjectToken'],
        additionalProperties: false,
        properties: {
          subjectToken: { type: 'string', description: 'The user\'s access token (JWT or opaque), at most 16 KiB' },
          userId: { type: 'string', description: 'The user it belongs to; must equal the token\'s sub when known' },
        },
      },
      response: {
        202: { type: 'object', required: ['jobId'], properties: { jobId: { type: 'string' } } },
        ...errorResponses, 413: { $ref: 'ErrorBody#' }, 415: { $ref: 'ErrorBody#' },
      },
    },
    // The schema documents the body; TokenProducer validates it, so every rejection carries the
    // producer's own code (subject_token_malformed, user_id_invalid, ...) instead of a generic one.
    validatorCompiler: () => () => true,
  }, async (request, reply) => {
    const body = request.body as unknown;
    try {
      if (body === undefined) throw new TokexError('invalid_input', 'send a JSON body { subjectToken, userId? } as application/json');
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new TokexError('invalid_input', 'the body must be a JSON object { subjectToken, userId? }');
      }
      for (const key of Object.keys(body)) {
        // The unknown name is not echoed: a confused client may have put a token there.
        if (!ALLOWED_FIELDS.has(key)) throw new TokexError('invalid_input', 'the body may only have the fields subjectToken and userId');
      }
      const { subjectToken, userId } = body as { subjectToken?: unknown; userId?: unknown };
      const { jobId } = await producer.enqueueExchange({ subjectToken: subjectToken as string, userId: userId as string | undefined });
      accepted.inc();
      return reply.code(202).send({ jobId });
    } catch (err) {
      ctx.metrics.exchangeRequests.inc({ outcome: 'rejected', code: isTokexError(err) ? err.code : 'internal_error' });
      throw err;
    }
  });

  app.get('/v1/exchanges/:jobId', {
    schema: {
      summary: 'What became of an exchange job',
      description: `With ?wait=<seconds> (at most ${MAX_WAIT_SECONDS}) the answer waits until the job completes or fails, or the time is up.`,
      security,
      params: {
        type: 'object',
        required: ['jobId'],
        properties: { jobId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } },
      },
      querystring: {
        type: 'object',
        properties: { wait: { type: 'number', minimum: 0, maximum: MAX_WAIT_SECONDS, description: 'Seconds to wait for the job to finish' } },
      },
      response: {
        200: {
          type: 'object',
          required: ['jobId', 'state'],
          properties: {
            jobId: { type: 'string' },
            state: { type: 'string', enum: ['waiting', 'active', 'completed', 'failed'] },
            userId: { type: 'string' },
            error: { type: 'string', description: 'Reason code of a failed job' },
            message: { type: 'string' },
          },
        },
        ...errorResponses, 404: { $ref: 'ErrorBody#' },
      },
    },
  }, async (request, reply) => {
    const { jobId } = request.params as { jobId: string };
    const waitSeconds = (request.query as { wait?: number }).wait ?? 0;
    let status = await readStatus(deps, jobId);
    if (status && waitSeconds > 0 && (status.state === 'waiting' || status.state === 'active')) {
      status = await waitForJob(deps, jobId, waitSeconds * 1000) ?? status;
    }
    if (!status) return sendError(reply, 'not_found', `no exchange job ${jobId} (unknown, or removed after its retention)`);
    return status;
  });
}

/** The job's state as clients see it, or null when the job does not exist. */
async function readStatus(deps: HttpApiDeps, jobId: string): Promise<ExchangeStatusBody | null> {
  // State first, then the job hash: a job only moves forward, so a hash read after a finished
  // state holds that state's fields (failedReason, returnvalue). The other order can pair a
  // 'failed' state with the hash of the still-active job.
  const bullState = await guardRedis(() => deps.exchangeQueue.getJobState(jobId));
  if (bullState === 'unknown') return null;
  const job = await guardRedis(() => Job.fromId<{ userId?: string }, ExchangeJobResult>(deps.exchangeQueue, jobId));
  if (!job) return null;
  return describe(job, bullState);
}

function describe(job: Job<{ userId?: string }, ExchangeJobResult>, bullState: string): ExchangeStatusBody {
  const state: ExchangeState = bullState === 'completed' || bullState === 'failed' || bullState === 'active' ? bullState : 'waiting';
  const body: ExchangeStatusBody = { jobId: job.id ?? '', state };
  const userId = job.returnvalue?.userId ?? job.data?.userId;
  if (typeof userId === 'string') body.userId = userId;
  if (state === 'failed') {
    body.error = reasonCode(job.failedReason);
    if (job.failedReason) body.message = job.failedReason;
  }
  return body;
}

/**
 * Waits for the job on the server's shared QueueEvents (Job#waitUntilFinished), bounded by
 * `timeoutMs` and by server shutdown, then reads its state again.
 */
async function waitForJob(deps: HttpApiDeps, jobId: string, timeoutMs: number): Promise<ExchangeStatusBody | null> {
  // Every waiter holds listeners on the shared QueueEvents: past the cap, answer with the current state.
  if (waiters >= MAX_WAITERS) return readStatus(deps, jobId);
  const job = await guardRedis(() => Job.fromId<{ userId?: string }, ExchangeJobResult>(deps.exchangeQueue, jobId));
  if (!job) return null;
  waiters += 1;
  try {
    return await waitForFinish(deps, job, jobId, timeoutMs);
  } finally {
    waiters -= 1;
  }
}

/** Long-polls (`?wait=`) in flight in this process, and their cap. */
let waiters = 0;
const MAX_WAITERS = 1000;

async function waitForFinish(
  deps: HttpApiDeps,
  job: Job<{ userId?: string }, ExchangeJobResult>,
  jobId: string,
  timeoutMs: number,
): Promise<ExchangeStatusBody | null> {
  let result: ExchangeJobResult | undefined;
  const finished = job.waitUntilFinished(deps.exchangeEvents, timeoutMs).then(
    (value: ExchangeJobResult) => {
      result = value;
    },
    () => {}, // failed or timed out: the state read below tells which
  );
  await Promise.race([finished, deps.closing]);
  const status = await readStatus(deps, jobId);
  // A producer that enqueues with removeOnComplete may have had the job deleted on completion.
  if (!status && result) return { jobId, state: 'completed', ...(result.userId ? { userId: result.userId } : {}) };
  return status;
}

async function guardRedis<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    throw asRedisError(err);
  }
}
