import type { Middleware } from 'oidc-provider';
import { kcError } from './kc-errors.js';
import { DEFAULT_SCOPES, KNOWN_SCOPES, type DevIamRuntime } from './runtime.js';
import { issueTokens, paramList, paramString, tokenResponse } from './tokens.js';

/** Form parameters of the password grant (besides grant_type and client auth). */
export const PASSWORD_PARAMS = ['username', 'password', 'scope'];

/** Resolves requested scopes Keycloak-style: defaults plus known optional ones. */
export function resolveScopes(requested: string[]): string[] {
  const unknown = requested.filter((s) => s !== 'openid' && !(KNOWN_SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw kcError(400, 'invalid_scope', `Invalid scopes: ${requested.join(' ')}`);
  }
  // openid is accepted but dropped: this IAM issues no ID tokens.
  return [...new Set([...DEFAULT_SCOPES, ...requested.filter((s) => s !== 'openid')])];
}

/**
 * `grant_type=password` (Keycloak "Direct Access Grants") for the frontend
 * client: how tests and the demo obtain a user's token over HTTP.
 */
export function passwordGrant(rt: DevIamRuntime): Middleware {
  return async (ctx, next) => {
    const oidc = ctx.oidc;
    if (!oidc?.client) throw kcError(401, 'invalid_client', 'Invalid client or Invalid client credentials');
    const username = paramString(oidc.params.username);
    const password = paramString(oidc.params.password);
    if (!username || password === undefined) {
      throw kcError(401, 'invalid_grant', 'Invalid user credentials');
    }
    const user = rt.accounts.authenticate(username, password);
    if (!user) {
      // Keycloak answers 401 (not 400) for bad user credentials.
      throw kcError(401, 'invalid_grant', 'Invalid user credentials');
    }
    const scopes = resolveScopes(paramList(oidc.params.scope));
    const tokens = await issueTokens(rt, {
      ctx,
      client: oidc.client,
      sub: user.sub,
      sid: rt.sessions.openSession(user.sub),
      scopes,
      // Realm sketch: the frontend has an audience mapper adding the worker client.
      aud: [rt.workerClientId, 'account'],
      gty: 'password',
      withRefreshToken: true,
    });
    ctx.body = tokenResponse(tokens);
    await next();
  };
}
