import type { Middleware, RefreshTokenInstance } from 'oidc-provider';
// Deep import of the built-in handler: we wrap it rather than re-implement
// rotation and reuse detection. Pinned to oidc-provider 8.x (no "exports" map).
import { handler as builtinRefresh, parameters as builtinParams } from 'oidc-provider/lib/actions/grants/refresh_token.js';
import { kcError, oidcErrorCode } from './kc-errors.js';
import { nowSeconds, refreshTtlFor, type DevIamRuntime } from './runtime.js';
import { paramString } from './tokens.js';

/** Parameters of the refresh_token grant as oidc-provider registered them. */
export const REFRESH_PARAMS: Set<string> = builtinParams;

/**
 * Serializes work per key. Keycloak detects a refresh token used twice even
 * when the two requests race; oidc-provider's find-then-consume is not atomic,
 * so concurrent refreshes of one token are queued to make the second one see
 * the token as consumed (and revoke the grant, as Keycloak would).
 */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => { release = resolve; });
    const tail = previous.then(() => current);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * The built-in refresh_token grant wrapped with Keycloak behaviour: error
 * descriptions, `refresh_expires_in` (0 for offline tokens), `session_state`,
 * `not-before-policy`, and idle-time reset when rotation is off.
 */
export function refreshGrant(rt: DevIamRuntime): Middleware {
  const mutex = new KeyedMutex();
  return async (ctx, next) => {
    const oidc = ctx.oidc;
    const value = paramString(oidc?.params.refresh_token);
    if (!oidc || value === undefined) {
      throw kcError(400, 'invalid_request', 'Missing parameter: refresh_token');
    }
    await mutex.run(value, async () => {
      // Looked up before the built-in handler runs, because on reuse it destroys the token.
      const before = await rt.provider.RefreshToken.find(value, { ignoreExpiration: true });
      const meta = rt.sessions.grant(before?.grantId);
      if (meta?.ended) {
        throw kcError(400, 'invalid_grant', meta.offline ? 'Offline session not active' : 'Session not active');
      }
      try {
        await builtinRefresh(ctx, async () => {});
      } catch (err) {
        if (oidcErrorCode(err) === 'invalid_grant') {
          throw kcError(400, 'invalid_grant', before?.consumed ? 'Stale token' : 'Token is not active');
        }
        throw err;
      }

      const current = oidc.entities.RefreshToken as RefreshTokenInstance | undefined;
      const scopes = current?.scopes ?? new Set<string>();
      const offline = scopes.has('offline_access');
      if (current && !rt.cfg.rotateRefreshTokens) {
        // Same token returned: restart its idle timer, like Keycloak does on use.
        current.exp = nowSeconds() + refreshTtlFor(rt.cfg, scopes);
        await current.save();
      }
      const body = ctx.body as Record<string, unknown>;
      ctx.body = {
        access_token: body.access_token,
        expires_in: body.expires_in,
        refresh_expires_in: offline ? 0 : refreshTtlFor(rt.cfg, scopes),
        refresh_token: body.refresh_token,
        token_type: 'Bearer',
        'not-before-policy': 0,
        session_state: meta?.sid ?? current?.sid,
        scope: body.scope ?? current?.scope ?? '',
      };
    });
    await next();
  };
}
