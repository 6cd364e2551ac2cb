import type { Client, KoaContext, ResourceServerInfo } from 'oidc-provider';
import { RESOURCE, refreshTtlFor, type DevIamRuntime, type RuntimeConfig } from './runtime.js';

/** Resource-server description making oidc-provider mint RS256 JWT access tokens. */
export function resourceServerInfo(cfg: RuntimeConfig, workerClientId: string): ResourceServerInfo {
  return {
    scope: 'openid profile email offline_access roles',
    audience: workerClientId, // replaced per grant by the JWT customizer (provider-config.ts)
    accessTokenTTL: cfg.accessTokenTtlSeconds,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

/** Input for {@link issueTokens}. */
export interface IssueInput {
  /** Request context, if any (links tokens to the request for oidc-provider's helpers). */
  ctx?: KoaContext;
  client: Client;
  sub: string;
  sid: string;
  scopes: string[];
  aud: string[];
  /** Value of the `gty` bookkeeping field (grant type that created the tokens). */
  gty: string;
  withRefreshToken: boolean;
  accessTokenExpiresIn?: number;
}

/** Tokens and the Keycloak-style lifetimes that go in the response. */
export interface IssuedTokens {
  accessToken: string;
  expiresIn: number;
  refreshToken?: string;
  /** 0 for offline tokens (Keycloak: no absolute expiry), else the SSO idle time. */
  refreshExpiresIn: number;
  scope: string;
  sid: string;
  offline: boolean;
}

/**
 * Creates an oidc-provider Grant for the client and mints a JWT access token
 * (and optionally an opaque refresh token) in it, exactly as oidc-provider's
 * own grants do, so that the built-in refresh_token grant, introspection and
 * revocation work on the result.
 */
export async function issueTokens(rt: DevIamRuntime, input: IssueInput): Promise<IssuedTokens> {
  const { provider, cfg } = rt;
  const scope = input.scopes.join(' ');
  const offline = input.scopes.includes('offline_access');

  const grant = new provider.Grant({ accountId: input.sub, clientId: input.client.clientId });
  grant.addResourceScope(RESOURCE, scope);
  const grantId = await grant.save();
  rt.sessions.addGrant({
    grantId, sub: input.sub, sid: input.sid, clientId: input.client.clientId, offline, aud: input.aud,
  });

  const at = new provider.AccessToken({
    accountId: input.sub,
    client: input.client,
    grantId,
    gty: input.gty,
    scope,
    sid: input.sid,
    expiresWithSession: false,
    ...(input.accessTokenExpiresIn !== undefined ? { expiresIn: input.accessTokenExpiresIn } : {}),
  });
  at.resourceServer = new provider.ResourceServer(RESOURCE, resourceServerInfo(cfg, rt.workerClientId));
  input.ctx?.oidc?.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken: string | undefined;
  if (input.withRefreshToken) {
    const token = new provider.RefreshToken({
      accountId: input.sub,
      client: input.client,
      grantId,
      gty: input.gty,
      scope,
      sid: input.sid,
      resource: RESOURCE,
      // Not bound to an oidc-provider (cookie) session; our SessionRegistry handles logout.
      expiresWithSession: false,
    });
    input.ctx?.oidc?.entity('RefreshToken', token);
    refreshToken = await token.save();
  }

  return {
    accessToken,
    expiresIn: at.expiration,
    ...(refreshToken !== undefined ? { refreshToken } : {}),
    refreshExpiresIn: refreshToken === undefined || offline
      ? 0
      : refreshTtlFor(cfg, new Set(input.scopes)),
    scope,
    sid: input.sid,
    offline,
  };
}

/** Normalizes a form parameter that may be repeated into a list. */
export function paramList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(' ')).filter(Boolean);
}

/** First value of a possibly repeated form parameter. */
export function paramString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Keycloak's response body for a successful grant. */
export function tokenResponse(tokens: IssuedTokens, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    access_token: tokens.accessToken,
    expires_in: tokens.expiresIn,
    refresh_expires_in: tokens.refreshExpiresIn,
    ...(tokens.refreshToken !== undefined ? { refresh_token: tokens.refreshToken } : {}),
    token_type: 'Bearer',
    'not-before-policy': 0,
    session_state: tokens.sid,
    scope: tokens.scope,
    ...extra,
  };
}
