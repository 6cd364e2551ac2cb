import { randomBytes } from 'node:crypto';
import type {
  AccessTokenInstance, BaseTokenInstance, Client, Configuration, KoaContext,
} from 'oidc-provider';
import { adapterFactory, type MemoryStore } from './adapter.js';
import { GRANT_TOKEN_EXCHANGE, RESOURCE, refreshTtlFor, type DevIamRuntime } from './runtime.js';
import { resourceServerInfo } from './tokens.js';

/** Keycloak endpoint paths, relative to the realm (= issuer) path. */
export const KC_ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  jwks: '/protocol/openid-connect/certs',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  userinfo: '/protocol/openid-connect/userinfo',
  end_session: '/protocol/openid-connect/logout',
} as const;

/** Grants outlive any refresh token; token TTLs and our SessionRegistry decide validity. */
const GRANT_TTL_SECONDS = 10 * 365 * 24 * 3600;

interface ProviderConfigInput {
  rt: Omit<DevIamRuntime, 'provider'>;
  store: MemoryStore;
  /** Private signing JWK (RS256, with kid/use/alg). */
  signingJwk: Record<string, unknown>;
  workerClientSecret: string;
}

/** JWT access-token structure handed to `formats.customizers.jwt`. */
interface StructuredJwt {
  header?: Record<string, unknown>;
  payload: Record<string, unknown>;
}

/**
 * oidc-provider v8 configuration imitating the Keycloak realm sketched in
 * keycloak.md: a public frontend client (direct access grants) and a
 * confidential worker client allowed to exchange tokens.
 */
export function buildProviderConfig(input: ProviderConfigInput): Configuration {
  const { rt, store, signingJwk, workerClientSecret } = input;
  const { cfg, accounts, sessions } = rt;

  return {
    adapter: adapterFactory(store),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    findAccount: accounts.findAccount,
    routes: KC_ROUTES,
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles'],
    clients: [
      {
        client_id: rt.workerClientId,
        client_secret: workerClientSecret,
        // client_secret_post is accepted too: oidc-provider treats basic/post alike.
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [GRANT_TOKEN_EXCHANGE, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: rt.frontendClientId,
        token_endpoint_auth_method: 'none',
        grant_types: ['password', 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // Keycloak only lets confidential clients introspect.
        allowedPolicy: async (_ctx: unknown, client: Client) => client.clientAuthMethod !== 'none',
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Every token is for our one resource, so access tokens are always JWTs.
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => resourceServerInfo(cfg, rt.workerClientId),
      },
    },
    // Refresh tokens are minted by our grants; this hook only matters for
    // oidc-provider's own code flow (unused) but also keeps the refresh grant on.
    issueRefreshToken: async () => true,
    rotateRefreshToken: () => cfg.rotateRefreshTokens,
    extraTokenClaims: async (_ctx: KoaContext | undefined, token: BaseTokenInstance) => {
      const user = token.accountId ? accounts.bySub(token.accountId) : undefined;
      return {
        typ: 'Bearer',
        azp: token.clientId,
        ...(token.sid ? { sid: token.sid, session_state: token.sid } : {}),
        ...(user ? { preferred_username: user.username } : {}),
        ...(user?.email ? { email: user.email, email_verified: true } : {}),
      };
    },
    formats: {
      customizers: {
        jwt: async (_ctx: unknown, token: AccessTokenInstance, jwt: StructuredJwt) => {
          jwt.header = { typ: 'JWT' }; // what Keycloak puts in its access tokens
          const meta = sessions.grant(token.grantId);
          if (meta) {
            // oidc-provider supports one audience per resource; Keycloak may have several.
            jwt.payload.aud = meta.aud.length === 1 ? meta.aud[0] : meta.aud;
          }
          const { jti, exp } = jwt.payload;
          if (token.grantId && typeof jti === 'string' && typeof exp === 'number') {
            sessions.trackAccessToken(jti, token.grantId, exp);
          }
        },
      },
    },
    ttl: {
      AccessToken: (_ctx: unknown, token: AccessTokenInstance) =>
        token.resourceServer?.accessTokenTTL ?? cfg.accessTokenTtlSeconds,
      // Each new refresh token lives the full idle time from now (offline or SSO idle).
      RefreshToken: (_ctx: unknown, token: BaseTokenInstance) => refreshTtlFor(cfg, token.scopes),
      Grant: GRANT_TTL_SECONDS,
      ClientCredentials: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
    },
  };
}
