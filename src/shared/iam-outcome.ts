import { TokexError } from './errors.js';
import { readJwtClaims } from './subject-token.js';

/**
 * Classification of every IAM answer into a token response or a {@link TokexError}: the single
 * place that knows what Keycloak's statuses and OAuth error codes mean (keycloak.md, "Errors").
 * Matching is on HTTP status plus `error`; the description only breaks ties where Keycloak reuses
 * one code for a user problem and a configuration problem.
 */

/** Which grant the answer belongs to: the same `invalid_grant` means different things. */
export type IamCall = 'exchange' | 'refresh';

/** A successful token endpoint answer, normalised. */
export interface TokenResponse {
  accessToken: string;
  /** Lifetime of the access token in seconds. */
  expiresInSeconds: number;
  refreshToken?: string;
  /** 0 means an offline token with no absolute expiry; undefined when the IAM did not say. */
  refreshExpiresInSeconds?: number;
  scope?: string;
  tokenType: string;
  /** The access token's claims, decoded once on receipt (unverified: it came straight from the IAM); null when it is not a JWT. */
  accessClaims?: Record<string, unknown> | null;
}

/** The access token's claims: the ones decoded on receipt, or decoded now for hand-made responses. */
export function accessClaimsOf(tokens: TokenResponse): Record<string, unknown> | null {
  return tokens.accessClaims !== undefined ? tokens.accessClaims : readJwtClaims(tokens.accessToken);
}

/** Default wait when a 429 carries no usable Retry-After. */
export const DEFAULT_RETRY_AFTER_MS = 1000;
/** Longest wait honoured from a Retry-After header. */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** Parses `Retry-After` in both forms (delta-seconds or HTTP date) into ms from `nowMs`; clamped. */
export function parseRetryAfterMs(value: unknown, nowMs = Date.now()): number {
  if (typeof value !== 'string' || value.trim() === '') return DEFAULT_RETRY_AFTER_MS;
  const text = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return DEFAULT_RETRY_AFTER_MS;
    ms = at - nowMs;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)));
}

/** Reads a lifetime that may arrive as a number or a numeric string; undefined when absent or bad. */
function seconds(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

/** Turns a body (object or JSON text) into an object, or an empty one. */
function asObject(body: unknown): Record<string, unknown> {
  if (body && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }
  return {};
}

/** Descriptions of `invalid_request` that point at our client's configuration, not the user's token. */
const CONFIG_HINT = /scope|audience|requested_token_type|subject_token_type|not allowed|not supported|unsupported|client/i;

/**
 * Classifies one token-endpoint answer. Returns the normalised tokens on success, throws a
 * {@link TokexError} otherwise:
 * - `iam_rate_limited` (429, with `retryAfterMs`), `iam_unavailable` (5xx, 408, bad success body): transient;
 * - `client_misconfigured` (401, 403, unknown 4xx, configuration-looking 400s): permanent, alert;
 * - exchange: `subject_token_invalid` (400 invalid_grant / invalid_request "Invalid token"): permanent for the job;
 * - refresh: `refresh_token_invalid` (400 invalid_grant): the user must log in again.
 */
export function classifyIamResponse(
  call: IamCall,
  status: number,
  headers: Record<string, unknown>,
  rawBody: unknown,
  nowMs = Date.now(),
): TokenResponse {
  const body = asObject(rawBody);
  const error = typeof body.error === 'string' ? body.error : undefined;
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  const opts = { status, iamError: error };
  // Descriptions can echo input: keep them short, and drop any word long enough to be a token.
  const safeDescription = description.slice(0, 160).split(/\s+/).filter((w) => w.length <= 40).join(' ').slice(0, 120);
  const said = error ? ` (${error.slice(0, 40)}${safeDescription ? `: ${safeDescription}` : ''})` : '';

  if (status >= 200 && status < 300) {
    const accessToken = body.access_token;
    const expiresInSeconds = seconds(body.expires_in);
    if (typeof accessToken !== 'string' || accessToken === '' || expiresInSeconds === undefined) {
      throw new TokexError('iam_unavailable', `IAM answered ${status} without access_token and expires_in`, opts);
    }
    const refreshToken = typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : undefined;
    return {
      accessToken,
      expiresInSeconds,
      refreshToken,
      refreshExpiresInSeconds: seconds(body.refresh_expires_in),
      scope: typeof body.scope === 'string' ? body.scope : undefined,
      tokenType: typeof body.token_type === 'string' ? body.token_type : 'Bearer',
      accessClaims: readJwtClaims(accessToken),
    };
  }
  if (status === 429) {
    const retryAfterMs = parseRetryAfterMs(headers['retry-after'], nowMs);
    throw new TokexError('iam_rate_limited', `IAM rate limited us; retry after ${retryAfterMs} ms`, { ...opts, retryAfterMs });
  }
  if (status >= 500 || status === 408) {
    throw new TokexError('iam_unavailable', `IAM answered ${status}${said}`, opts);
  }
  if (status === 401 || status === 403) {
    throw new TokexError('client_misconfigured', `IAM refused our client with ${status}${said}; check IAM_CLIENT_ID, IAM_CLIENT_SECRET and the client's permissions`, opts);
  }
  if (status === 400) {
    if (error === 'invalid_grant') {
      if (call === 'refresh') throw new TokexError('refresh_token_invalid', `IAM rejected the refresh token${said}; the user must log in again`, opts);
      throw new TokexError('subject_token_invalid', `IAM rejected the subject token${said}`, opts);
    }
    if (error === 'invalid_request' && !CONFIG_HINT.test(description)) {
      if (call === 'exchange') throw new TokexError('subject_token_invalid', `IAM rejected the subject token${said}`, opts);
    }
    throw new TokexError('client_misconfigured', `IAM rejected the request with 400${said}; check IAM_SCOPE, IAM_AUDIENCE and the client's token-exchange settings`, opts);
  }
  throw new TokexError('client_misconfigured', `IAM answered ${status}${said}; check IAM_TOKEN_URL`, opts);
}
