/**
 * Every failure the broker reports carries a machine-readable `code` from this closed union,
 * so callers `switch (err.code)` instead of parsing messages. Messages never contain a token.
 */
export const TOKEX_ERROR_CODES = [
  // Bad input from a producer or a job: permanent, nothing changed.
  'invalid_input',
  'subject_token_missing',
  'subject_token_too_large',
  'subject_token_malformed',
  'subject_token_expired',
  'user_id_invalid',
  'plaintext_job_refused',
  'job_data_invalid',
  // Configuration and infrastructure.
  'config_invalid',
  'redis_unavailable',
  'redis_rejected',
  'decrypt_failed',
  // IAM outcomes (see classifyIamResponse).
  'iam_unavailable',
  'iam_rate_limited',
  'subject_token_invalid',
  'client_misconfigured',
  'refresh_token_invalid',
  'aborted',
  // Token store and readers.
  'user_mismatch',
  'not_found',
  'reauth_required',
  'stale_write',
  'revoked_meanwhile',
  'refresh_in_flight',
  'lock_timeout',
] as const;

/** One of {@link TOKEX_ERROR_CODES}. */
export type TokexErrorCode = (typeof TOKEX_ERROR_CODES)[number];

/** Options for {@link TokexError}. */
export interface TokexErrorOptions {
  /** For `iam_rate_limited`: how long the IAM asked us to wait. */
  retryAfterMs?: number;
  /** HTTP status the IAM answered, when there was one. */
  status?: number;
  /** The IAM's OAuth `error` code, when there was one (never a description that could echo input). */
  iamError?: string;
}

/** The broker's error type: `code` says what happened, `message` says it for people. */
export class TokexError extends Error {
  readonly code: TokexErrorCode;
  readonly retryAfterMs?: number;
  readonly status?: number;
  readonly iamError?: string;

  constructor(code: TokexErrorCode, message: string, options: TokexErrorOptions = {}) {
    super(message);
    this.name = 'TokexError';
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    this.iamError = options.iamError;
  }

  /** The form stored as a BullMQ failure reason: `code: message`. */
  toReason(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** True when `err` is a {@link TokexError}, optionally with one of the given codes. */
export function isTokexError(err: unknown, ...codes: TokexErrorCode[]): err is TokexError {
  return err instanceof TokexError && (codes.length === 0 || codes.includes(err.code));
}
