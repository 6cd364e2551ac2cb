/** Public types of the development IAM (re-exported by index.ts). */

/** Keycloak token-exchange generation to imitate: V1 (legacy preview) or V2 (standard, 26.2+). */
export type ExchangeMode = 'v1' | 'v2';

/** A user that can log in (password grant) and own tokens. */
export interface DevIamUser {
  username: string;
  password: string;
  /** Stable user id, the `sub` claim. */
  sub: string;
  email?: string;
}

/** Minimal logger (pino-compatible). Tokens are never logged. */
export interface DevIamLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

/** Options of {@link startDevIam}. */
export interface DevIamOptions {
  /** Interface to listen on; default '127.0.0.1'. */
  host?: string;
  /** Port; default 0 (random free port). */
  port?: number;
  /** Realm name in the paths; default 'dev'. */
  realm?: string;
  /** Token-exchange generation; default 'v1'. */
  mode?: ExchangeMode;
  /** Confidential client allowed to exchange; default tokex-worker / tokex-worker-secret. */
  workerClient?: { clientId: string; clientSecret: string };
  /** Public client users log in with; default 'tokex-frontend'. */
  frontendClientId?: string;
  /** Users; default alice and bob (see accounts.ts). */
  users?: DevIamUser[];
  /** Access token lifetime; default 300. */
  accessTokenTtlSeconds?: number;
  /** Idle lifetime of ONLINE refresh tokens (reported as refresh_expires_in); default 1800. */
  ssoSessionIdleSeconds?: number;
  /** Idle lifetime of OFFLINE refresh tokens, reset by each refresh; default 2592000 (30 days). */
  offlineSessionIdleSeconds?: number;
  /** "Revoke Refresh Token": single-use refresh tokens, reuse revokes the grant; default true. */
  rotateRefreshTokens?: boolean;
  /** V2: return a refresh token when requested_token_type=...:refresh_token; default true. */
  v2RefreshSameSession?: boolean;
  /** Optional logger; never receives tokens. */
  logger?: DevIamLogger;
  /** Serve `POST /dev/faults` and `GET /dev/stats` (outside the realm); default false. */
  controlApi?: boolean;
  /**
   * Base URL used in the issuer instead of `http://host:port` (e.g. when listening on 0.0.0.0
   * inside a container). Extension to the agreed API; optional.
   */
  publicBaseUrl?: string;
}

/** Live counters of calls reaching the token, introspection and revocation endpoints. */
export interface DevIamStats {
  exchange: number;
  refresh: number;
  password: number;
  introspection: number;
  revocation: number;
  /** Error responses by `error` code (or `http_<status>` when the body is empty). */
  errors: Record<string, number>;
}

/** Settings that {@link DevIam.configure} may change at runtime. */
export type DevIamRuntimePatch = Partial<Pick<DevIamOptions,
  'mode' | 'accessTokenTtlSeconds' | 'ssoSessionIdleSeconds' | 'offlineSessionIdleSeconds'
  | 'rotateRefreshTokens' | 'v2RefreshSameSession'>>;

/** Fault switches applied before oidc-provider sees a request. */
export interface DevIamFaults {
  /** Next `count` calls answer `status` (default 503); 502/504 have an empty body. */
  failNext(count: number, status?: number): void;
  /** Next `count` calls answer 429 with this Retry-After value (seconds or HTTP date). */
  rateLimitNext(count: number, retryAfter: string): void;
  /** Latency added to each token/introspection/revocation call. */
  setLatencyMs(ms: number): void;
  reset(): void;
}

/** A running development IAM. */
export interface DevIam {
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly jwksUrl: string;
  readonly introspectionUrl: string;
  readonly revocationUrl: string;
  readonly workerClient: { clientId: string; clientSecret: string };
  readonly stats: DevIamStats;
  resetStats(): void;
  /**
   * A user's access token as the frontend client would get it. A negative
   * `expiresInSeconds` yields an already expired token (handy in tests).
   */
  issueUserToken(input: {
    sub?: string; username?: string; expiresInSeconds?: number; audience?: string[];
  }): Promise<string>;
  /** Change behaviour at runtime; applies to later calls. */
  configure(patch: DevIamRuntimePatch): void;
  readonly faults: DevIamFaults;
  /** End all sessions/grants of a user, like an admin logout. */
  endUserSessions(sub: string): Promise<void>;
  close(): Promise<void>;
}
