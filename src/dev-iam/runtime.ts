import type { CryptoKey } from 'jose';
import type { Provider } from 'oidc-provider';
import type { AccountStore } from './accounts.js';
import type { SessionRegistry } from './sessions.js';
import type { DevIamLogger, ExchangeMode } from './types.js';

/** Settings read on every request so that `configure()` applies to later calls. */
export interface RuntimeConfig {
  mode: ExchangeMode;
  accessTokenTtlSeconds: number;
  ssoSessionIdleSeconds: number;
  offlineSessionIdleSeconds: number;
  rotateRefreshTokens: boolean;
  v2RefreshSameSession: boolean;
}

/** Everything the grant handlers and the compat layer share. */
export interface DevIamRuntime {
  readonly cfg: RuntimeConfig;
  readonly accounts: AccountStore;
  readonly sessions: SessionRegistry;
  readonly workerClientId: string;
  readonly frontendClientId: string;
  /** Public half of the signing key, to verify subject tokens and JWT introspection. */
  readonly publicKey: CryptoKey;
  readonly logger?: DevIamLogger;
  /** Set right after the provider is constructed (it needs the issuer, which needs the port). */
  provider: Provider;
}

/** The single resource indicator all access tokens are minted for (JWT format). */
export const RESOURCE = 'urn:tokex:dev-iam:api';

/** Scopes the dev IAM knows. `openid` is accepted in requests but not carried (no ID tokens). */
export const KNOWN_SCOPES = ['profile', 'email', 'offline_access', 'roles'] as const;
/** Keycloak's default client scopes, always granted. */
export const DEFAULT_SCOPES = ['profile', 'email'] as const;

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TT_REFRESH = 'urn:ietf:params:oauth:token-type:refresh_token';
export const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';

/** Seconds since epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Lifetime of a refresh token carrying these scopes: offline idle or SSO idle. */
export function refreshTtlFor(cfg: RuntimeConfig, scopes: Set<string>): number {
  return scopes.has('offline_access') ? cfg.offlineSessionIdleSeconds : cfg.ssoSessionIdleSeconds;
}
