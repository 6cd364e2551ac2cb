import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isTokexError, type TokexErrorCode } from '../../shared/errors.js';

/**
 * How the HTTP API reports failures: every error answer has the body `{ error, message }` where
 * `error` is a {@link TokexErrorCode} or one of the few HTTP-only codes below, and the status
 * follows from the code in one table ({@link STATUS_BY_CODE}).
 */

/** Codes only the HTTP layer produces. */
export type HttpOnlyErrorCode =
  | 'unauthorized'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'internal_error';

/** The `error` field of an error answer. */
export type ApiErrorCode = TokexErrorCode | HttpOnlyErrorCode;

/** HTTP status of each code; codes not listed answer 500. */
export const STATUS_BY_CODE: Readonly<Partial<Record<ApiErrorCode, number>>> = {
  invalid_input: 400,
  subject_token_missing: 400,
  subject_token_too_large: 400,
  subject_token_malformed: 400,
  subject_token_expired: 400,
  user_id_invalid: 400,
  user_mismatch: 400,
  plaintext_job_refused: 400,
  job_data_invalid: 400,
  unauthorized: 401,
  not_found: 404,
  stale_write: 409,
  lock_timeout: 409,
  body_too_large: 413,
  unsupported_media_type: 415,
  client_misconfigured: 502,
  redis_unavailable: 503,
  redis_rejected: 500,
  iam_unavailable: 503,
  iam_rate_limited: 503,
  internal_error: 500,
};

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: ApiErrorCode;
  message: string;
}

/** JSON schema of {@link ErrorBody}, for route `response` schemas and the OpenAPI document. */
export const errorBodySchema = {
  $id: 'ErrorBody',
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'Machine-readable code (docs/http-api.md, "Errors")' },
    message: { type: 'string' },
  },
} as const;

/** Sends `{ error, message }` with the code's status (and Retry-After for transient codes). */
export function sendError(reply: FastifyReply, code: ApiErrorCode, message: string, retryAfterMs?: number): FastifyReply {
  const status = STATUS_BY_CODE[code] ?? 500;
  if (status === 503) reply.header('retry-after', String(Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000))));
  if (code === 'unauthorized') reply.header('www-authenticate', 'Bearer realm="tokex"');
  return reply.code(status).type('application/json; charset=utf-8').send({ error: code, message } satisfies ErrorBody);
}

/**
 * Fastify error handler: TokexErrors by their code; Fastify's own errors (body parsing, size,
 * content type, schema validation) as 4xx with a fixed message, because parser messages can quote
 * parts of the body and the body may hold a token; anything else as a logged 500.
 */
export function handleError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (isTokexError(err)) {
    if ((STATUS_BY_CODE[err.code] ?? 500) >= 500) request.log.warn({ code: err.code, err }, 'request failed');
    return sendError(reply, err.code, err.message, err.retryAfterMs);
  }
  const fastifyError = err as FastifyError;
  const status = fastifyError.statusCode ?? 500;
  if (status === 413) return sendError(reply, 'body_too_large', 'request body is larger than the limit of this route');
  if (status === 415) return sendError(reply, 'unsupported_media_type', 'send the body as application/json');
  if (fastifyError.validation) {
    return sendError(reply, 'invalid_input', `${fastifyError.validationContext ?? 'request'} ${fastifyError.validation[0]?.instancePath ?? ''} ${fastifyError.validation[0]?.message ?? 'is invalid'}`.replace(/\s+/g, ' ').trim());
  }
  if (err instanceof SyntaxError || fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return sendError(reply, 'invalid_input', 'request body is not valid JSON (or has a __proto__ or constructor key)');
  }
  if (fastifyError.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return sendError(reply, 'invalid_input', 'request body is empty');
  if (status >= 400 && status < 500) return sendError(reply, status === 404 ? 'not_found' : 'invalid_input', `request rejected (${fastifyError.code ?? status})`);
  request.log.error({ err }, 'unexpected error');
  return sendError(reply, 'internal_error', 'internal error');
}
