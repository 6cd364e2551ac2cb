import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TokexError } from '../../shared/errors.js';
import { sendError } from './errors.js';

/** Name of the dashboard's session cookie (set by the `?key=` handoff, see docs/http-api.md). */
export const ADMIN_COOKIE = 'tokex_admin';
/** How long a dashboard cookie stays valid. */
export const ADMIN_COOKIE_TTL_MS = 8 * 3600_000;

const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * API-key authentication. Keys are compared as SHA-256 digests with `timingSafeEqual`, against
 * every configured key without an early exit, so neither a key's content nor its length leaks
 * through timing. Dashboard cookies are stateless: `<expiresAtMs>.<HMAC-SHA256(key, expiresAtMs)>`,
 * so the key itself never sits in the browser and removing a key invalidates its cookies.
 */
export class ApiKeyAuth {
  private readonly keyDigests: Buffer[];
  private readonly keys: string[];

  /** `keys` empty is refused unless `mode` is `none` (then every request passes). */
  constructor(keys: string[], readonly mode: 'api-key' | 'none') {
    if (mode === 'api-key' && keys.length === 0) {
      throw new TokexError('config_invalid', 'PRODUCER_API_KEYS is empty: set API keys, or PRODUCER_AUTH=none to run the HTTP API without authentication');
    }
    this.keys = [...keys];
    this.keyDigests = keys.map(sha256);
  }

  /** True when `presented` equals one of the keys (constant time per key). */
  isValidKey(presented: string | undefined): boolean {
    if (this.mode === 'none') return true;
    if (!presented) return false;
    const digest = sha256(presented);
    let match = false;
    for (const known of this.keyDigests) match = timingSafeEqual(digest, known) || match;
    return match;
  }

  /** The key in an `Authorization: Bearer <key>` header, if any. */
  static bearer(request: FastifyRequest): string | undefined {
    const header = request.headers.authorization;
    if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
    return header.slice(7).trim();
  }

  /** Fastify `onRequest` hook: 401 `unauthorized` without a valid bearer key. */
  readonly requireKey = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (this.isValidKey(ApiKeyAuth.bearer(request))) return;
    await sendError(reply, 'unauthorized', 'send Authorization: Bearer <API key>');
  };

  /** A dashboard cookie value for `key` (call only with a valid key). */
  issueAdminCookie(key: string, nowMs = Date.now()): string {
    const expiresAtMs = nowMs + ADMIN_COOKIE_TTL_MS;
    return `${expiresAtMs}.${createHmac('sha256', key).update(`tokex-admin:${expiresAtMs}`).digest('base64url')}`;
  }

  /** True when `cookie` was issued by {@link issueAdminCookie} for a configured key and has not expired. */
  isValidAdminCookie(cookie: string | undefined, nowMs = Date.now()): boolean {
    if (this.mode === 'none') return true;
    if (!cookie) return false;
    const dot = cookie.indexOf('.');
    const expiresAtMs = Number(cookie.slice(0, dot));
    if (dot <= 0 || !Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs) return false;
    const presented = sha256(cookie.slice(dot + 1));
    let match = false;
    for (const key of this.keys) {
      const expected = sha256(createHmac('sha256', key).update(`tokex-admin:${expiresAtMs}`).digest('base64url'));
      match = timingSafeEqual(presented, expected) || match;
    }
    return match;
  }
}

/** The value of one cookie in a `Cookie` header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
