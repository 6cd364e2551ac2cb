/**
 * Development IAM: an oidc-provider instance made to behave like Keycloak
 * (paths, token exchange V1/V2, refresh rotation, error bodies) over real
 * HTTP on loopback, for tests and the demo. See /work/shared/docs/keycloak.md.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider from 'oidc-provider';
import { AccountStore, DEFAULT_USERS } from './accounts.js';
import { MemoryStore } from './adapter.js';
import { EXCHANGE_DUPES, EXCHANGE_PARAMS, exchangeGrant } from './exchange-grant.js';
import { FaultState, StatsCounter } from './faults.js';
import { keycloakCompat } from './keycloak-compat.js';
import { PASSWORD_PARAMS, passwordGrant } from './password-grant.js';
import { buildProviderConfig, KC_ROUTES } from './provider-config.js';
import { REFRESH_PARAMS, refreshGrant } from './refresh-grant.js';
import { GRANT_TOKEN_EXCHANGE, nowSeconds, type DevIamRuntime, type RuntimeConfig } from './runtime.js';
import { listenHttp } from './server.js';
import { SessionRegistry } from './sessions.js';
import { issueTokens } from './tokens.js';
import type { DevIam, DevIamOptions, DevIamRuntimePatch } from './types.js';

export type {
  DevIam, DevIamFaults, DevIamLogger, DevIamOptions, DevIamRuntimePatch, DevIamStats, DevIamUser,
  ExchangeMode,
} from './types.js';
export { DEFAULT_USERS } from './accounts.js';

/** Default confidential worker client. */
export const DEFAULT_WORKER_CLIENT = Object.freeze({
  clientId: 'tokex-worker',
  clientSecret: 'tokex-worker-secret',
});
/** Default public frontend client. */
export const DEFAULT_FRONTEND_CLIENT_ID = 'tokex-frontend';

function runtimeConfig(options: DevIamOptions): RuntimeConfig {
  return {
    mode: options.mode ?? 'v1',
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 300,
    ssoSessionIdleSeconds: options.ssoSessionIdleSeconds ?? 1800,
    offlineSessionIdleSeconds: options.offlineSessionIdleSeconds ?? 2_592_000,
    rotateRefreshTokens: options.rotateRefreshTokens ?? true,
    v2RefreshSameSession: options.v2RefreshSameSession ?? true,
  };
}

/** Host put in the issuer: a wildcard listen address is not reachable as such. */
function issuerHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts a development IAM on loopback (random port by default). */
export async function startDevIam(options: DevIamOptions = {}): Promise<DevIam> {
  const host = options.host ?? '127.0.0.1';
  const realm = options.realm ?? 'dev';
  const workerClient = { ...(options.workerClient ?? DEFAULT_WORKER_CLIENT) };
  const cfg = runtimeConfig(options);

  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const signingJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), use: 'sig', alg: 'RS256' };

  const http = await listenHttp(host, options.port ?? 0);
  const base = (options.publicBaseUrl ?? `http://${issuerHost(host)}:${http.port}`).replace(/\/+$/, '');
  const prefix = `/realms/${encodeURIComponent(realm)}`;
  const issuer = `${base}${prefix}`;

  const store = new MemoryStore();
  const partial: Omit<DevIamRuntime, 'provider'> = {
    cfg,
    accounts: new AccountStore(options.users ?? DEFAULT_USERS),
    sessions: new SessionRegistry(),
    workerClientId: workerClient.clientId,
    frontendClientId: options.frontendClientId ?? DEFAULT_FRONTEND_CLIENT_ID,
    publicKey,
    ...(options.logger ? { logger: options.logger } : {}),
  };
  const provider = new Provider(issuer, buildProviderConfig({
    rt: partial, store, signingJwk, workerClientSecret: workerClient.clientSecret,
  }));
  const rt: DevIamRuntime = { ...partial, provider };

  provider.registerGrantType('password', passwordGrant(rt), PASSWORD_PARAMS);
  provider.registerGrantType(GRANT_TOKEN_EXCHANGE, exchangeGrant(rt), EXCHANGE_PARAMS, EXCHANGE_DUPES);
  // Replaces the built-in handler (same name) with the Keycloak-flavoured wrapper.
  provider.registerGrantType('refresh_token', refreshGrant(rt), REFRESH_PARAMS, ['resource']);

  const faults = new FaultState();
  const stats = new StatsCounter();
  provider.use(keycloakCompat({
    faults,
    stats,
    introspectJwt: (token) => introspectJwt(rt, token),
    ...(options.logger ? { logger: options.logger } : {}),
  }));
  http.mount(prefix, provider.callback());
  if (options.controlApi) http.enableControlApi(faults, () => stats.stats);

  // Expired entries are dropped lazily; the sweep only bounds memory in long demos.
  const sweep = setInterval(() => {
    store.sweep();
    rt.sessions.prune(nowSeconds());
  }, 60_000);
  sweep.unref();

  options.logger?.info({ issuer, mode: cfg.mode, realm }, 'dev-iam started');

  let closed = false;
  return {
    issuer,
    tokenUrl: `${issuer}${KC_ROUTES.token}`,
    jwksUrl: `${issuer}${KC_ROUTES.jwks}`,
    introspectionUrl: `${issuer}${KC_ROUTES.introspection}`,
    revocationUrl: `${issuer}${KC_ROUTES.revocation}`,
    workerClient,
    stats: stats.stats,
    resetStats: () => stats.reset(),
    faults,
    issueUserToken: (input) => issueUserToken(rt, input),
    configure(patch: DevIamRuntimePatch) {
      for (const [key, value] of Object.entries(patch)) {
        if (value !== undefined) Object.assign(cfg, { [key]: value });
      }
    },
    async endUserSessions(sub: string) {
      for (const grantId of rt.sessions.endUser(sub)) {
        // Refresh tokens are kept so a later refresh can say "Session not active";
        // without their grant oidc-provider treats them (and introspection) as dead.
        await provider.Grant.adapter.destroy(grantId);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      await http.close();
      store.clear();
      options.logger?.info({ issuer }, 'dev-iam stopped');
    },
  };
}

async function issueUserToken(
  rt: DevIamRuntime,
  input: { sub?: string; username?: string; expiresInSeconds?: number; audience?: string[] },
): Promise<string> {
  const user = input.sub !== undefined
    ? rt.accounts.bySub(input.sub)
    : input.username !== undefined ? rt.accounts.byUsername(input.username) : rt.accounts.all[0];
  if (!user) throw new Error(`dev-iam: unknown user ${input.sub ?? input.username ?? ''}`);
  const client = await rt.provider.Client.find(rt.frontendClientId);
  if (!client) throw new Error('dev-iam: frontend client missing');
  const tokens = await issueTokens(rt, {
    client,
    sub: user.sub,
    sid: rt.sessions.openSession(user.sub),
    scopes: ['profile', 'email'],
    aud: input.audience ?? [rt.workerClientId, 'account'],
    gty: 'password',
    withRefreshToken: false,
    ...(input.expiresInSeconds !== undefined ? { accessTokenExpiresIn: input.expiresInSeconds } : {}),
  });
  return tokens.accessToken;
}

/** Keycloak-style introspection of one of our JWT access tokens. */
async function introspectJwt(rt: DevIamRuntime, token: string): Promise<Record<string, unknown> | undefined> {
  try {
    const { payload } = await jwtVerify(token, rt.publicKey, { issuer: rt.provider.issuer, algorithms: ['RS256'] });
    if (typeof payload.sid === 'string' && !rt.sessions.isSessionActive(payload.sid)) return undefined;
    const grantId = typeof payload.jti === 'string' ? rt.sessions.accessTokenGrant(payload.jti) : undefined;
    if (grantId && (rt.sessions.grant(grantId)?.ended || !(await rt.provider.Grant.find(grantId)))) {
      return undefined;
    }
    return {
      ...payload,
      active: true,
      client_id: payload.azp,
      username: payload.preferred_username,
      token_type: 'Bearer',
    };
  } catch {
    return undefined;
  }
}
