import { decodeJwt } from 'jose';
import { TokexError } from './errors.js';

/** Largest subject token accepted, in bytes. */
export const MAX_SUBJECT_TOKEN_BYTES = 16 * 1024;
/** Largest user id accepted, in characters. */
export const MAX_USER_ID_LENGTH = 256;

/** RFC 6750 b64token: the characters a bearer token may use. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]+$/;

/** What validation learned about a subject token. */
export interface SubjectTokenFacts {
  /** True when the token is a compact JWS (JWT). */
  isJwt: boolean;
  /** `exp` of a JWT, in ms since epoch; undefined for opaque tokens or JWTs without `exp`. */
  expiresAtMs?: number;
  /** `sub` of a JWT, when present. */
  subject?: string;
}

/** Reads the unverified claims of a JWT, or null when `token` is not one. Never throws. */
export function readJwtClaims(token: string): Record<string, unknown> | null {
  if (token.split('.').length !== 3) return null;
  try {
    return decodeJwt(token) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * Checks a subject token before it is enqueued: a non-empty string, at most 16 KiB, made of bearer
 * token characters; a JWT must decode and must not have expired. Throws a {@link TokexError} with a
 * specific code; the message never repeats the token.
 */
export function validateSubjectToken(token: unknown, nowMs = Date.now()): SubjectTokenFacts {
  if (token === undefined || token === null || token === '') {
    throw new TokexError('subject_token_missing', 'subjectToken is required');
  }
  if (typeof token !== 'string') throw new TokexError('subject_token_malformed', 'subjectToken must be a string');
  if (Buffer.byteLength(token, 'utf8') > MAX_SUBJECT_TOKEN_BYTES) {
    throw new TokexError('subject_token_too_large', `subjectToken is larger than ${MAX_SUBJECT_TOKEN_BYTES} bytes`);
  }
  if (!B64TOKEN.test(token)) {
    throw new TokexError('subject_token_malformed', 'subjectToken contains characters a bearer token cannot have');
  }
  const parts = token.split('.');
  if (parts.length !== 3) return { isJwt: false };
  if (!parts.every((p) => BASE64URL_SEGMENT.test(p))) {
    throw new TokexError('subject_token_malformed', 'subjectToken looks like a JWT but its segments are not base64url');
  }
  const claims = readJwtClaims(token);
  if (!claims) throw new TokexError('subject_token_malformed', 'subjectToken looks like a JWT but does not decode');
  const exp = claims.exp;
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) {
    throw new TokexError('subject_token_malformed', 'subjectToken has a non-numeric exp claim');
  }
  const expiresAtMs = typeof exp === 'number' ? exp * 1000 : undefined;
  if (expiresAtMs !== undefined && expiresAtMs <= nowMs) {
    throw new TokexError('subject_token_expired', 'subjectToken has expired; the user must bring a new token');
  }
  return { isJwt: true, expiresAtMs, subject: typeof claims.sub === 'string' ? claims.sub : undefined };
}

/** Checks an optional user id: 1-256 printable characters, no whitespace or control characters. */
export function validateUserId(userId: unknown): string | undefined {
  if (userId === undefined) return undefined;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    throw new TokexError('user_id_invalid', `userId must be a string of 1-${MAX_USER_ID_LENGTH} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(userId)) {
    throw new TokexError('user_id_invalid', 'userId must not contain whitespace or control characters');
  }
  return userId;
}
