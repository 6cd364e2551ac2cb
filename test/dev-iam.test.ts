import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_USERS, startDevIam, type DevIam } from '../src/dev-iam/index.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const TT_REFRESH = 'urn:ietf:params:oauth:token-type:refresh_token';
const [ALICE, BOB] = DEFAULT_USERS as [typeof DEFAULT_USERS[0], typeof DEFAULT_USERS[0]];

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

async function post(url: string, form: Record<string, string | string[]>, basic?: string): Promise<Reply> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(form)) {
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, v);
  }
  const res = await fetch(url, {
    method: 'POST',
    body: params,
    headers: basic ? { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } : {},
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try { body = text ? JSON.parse(text) as Record<string, unknown> : {}; } catch { /* non-JSON */ }
  return { status: res.status, headers: res.headers, text, body };
}

describe('dev-iam', () => {
  let iam: DevIam;
  const worker = (): Record<string, string> => ({
    client_id: iam.workerClient.clientId,
    client_secret: iam.workerClient.clientSecret,
  });
  const login = (username = ALICE.username, password = ALICE.password, scope?: string): Promise<Reply> =>
    post(iam.tokenUrl, {
      grant_type: 'password', client_id: 'tokex-frontend', username, password, ...(scope ? { scope } : {}),
    });
  const exchange = (subjectToken: string, extra: Record<string, string | string[]> = {}): Promise<Reply> =>
    post(iam.tokenUrl, { grant_type: EXCHANGE, ...worker(), subject_token: subjectToken, ...extra });
  const refresh = (refreshToken: string): Promise<Reply> =>
    post(iam.tokenUrl, { grant_type: 'refresh_token', ...worker(), refresh_token: refreshToken });
  const introspect = (token: string): Promise<Reply> => post(iam.introspectionUrl, { ...worker(), token });
  /** What the worker sends on both generations (keycloak.md). */
  const standardExchange = (subjectToken: string, extra: Record<string, string> = {}): Promise<Reply> =>
    exchange(subjectToken, { subject_token_type: TT_ACCESS, requested_token_type: TT_REFRESH, ...extra });

  beforeAll(async () => {
    iam = await startDevIam();
  });
  afterAll(async () => {
    await iam.close();
  });
  beforeEach(() => {
    iam.configure({
      mode: 'v1', rotateRefreshTokens: true, v2RefreshSameSession: true,
      offlineSessionIdleSeconds: 2_592_000, ssoSessionIdleSeconds: 1800, accessTokenTtlSeconds: 300,
    });
    iam.faults.reset();
    iam.resetStats();
  });

  it('serves discovery with Keycloak paths under /realms/<realm>', async () => {
    expect(iam.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/realms\/dev$/);
    const res = await fetch(`${iam.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = await res.json() as Record<string, unknown>;
    expect(doc.issuer).toBe(iam.issuer);
    expect(doc.token_endpoint).toBe(iam.tokenUrl);
    expect(doc.jwks_uri).toBe(iam.jwksUrl);
    expect(doc.introspection_endpoint).toBe(iam.introspectionUrl);
    expect(doc.revocation_endpoint).toBe(iam.revocationUrl);
    expect(iam.tokenUrl).toBe(`${iam.issuer}/protocol/openid-connect/token`);
    expect(iam.jwksUrl).toBe(`${iam.issuer}/protocol/openid-connect/certs`);
    const jwks = await (await fetch(iam.jwksUrl)).json() as { keys: { kty: string; d?: string }[] };
    expect(jwks.keys[0]?.kty).toBe('RSA');
    expect(jwks.keys[0]?.d).toBeUndefined();
  });

  it('password grant: issues a user token; wrong password is 401 invalid_grant', async () => {
    const ok = await login();
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    expect(typeof ok.body.access_token).toBe('string');
    expect(typeof ok.body.refresh_token).toBe('string');
    const claims = decodeJwt(ok.body.access_token as string);
    expect(claims).toMatchObject({ sub: ALICE.sub, preferred_username: 'alice', azp: 'tokex-frontend' });

    const bad = await login('alice', 'wrong');
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual({ error: 'invalid_grant', error_description: 'Invalid user credentials' });
    expect((await login('nobody', 'x')).status).toBe(401);
  });

  it('issueUserToken: RS256 JWT verifiable with the JWKS, with Keycloak claims', async () => {
    const token = await iam.issueUserToken({ username: 'bob' });
    const jwks = createRemoteJWKSet(new URL(iam.jwksUrl));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: iam.issuer });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({
      sub: BOB.sub, preferred_username: 'bob', azp: 'tokex-frontend', typ: 'Bearer',
    });
    expect(payload.aud).toContain(iam.workerClient.clientId);
    for (const claim of ['exp', 'iat', 'jti', 'scope', 'sid'] as const) expect(payload[claim]).toBeDefined();
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(300);

    const custom = decodeJwt(await iam.issueUserToken({ sub: ALICE.sub, audience: ['other'], expiresInSeconds: 60 }));
    expect(custom.aud).toBe('other');
    expect((custom.exp ?? 0) - (custom.iat ?? 0)).toBe(60);
    await expect(iam.issueUserToken({ username: 'mallory' })).rejects.toThrow();
  });

  describe('V1 token exchange', () => {
    it('offline_access gives an offline refresh token (refresh_expires_in 0)', async () => {
      const subject = await iam.issueUserToken({ username: 'alice' });
      const res = await exchange(subject, { scope: 'offline_access' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        token_type: 'Bearer', refresh_expires_in: 0, 'not-before-policy': 0, issued_token_type: TT_REFRESH,
      });
      expect(String(res.body.scope).split(' ')).toContain('offline_access');
      expect(typeof res.body.refresh_token).toBe('string');
      expect(typeof res.body.session_state).toBe('string');
      const at = decodeJwt(res.body.access_token as string);
      expect(at.sub).toBe(ALICE.sub);
      expect(at.preferred_username).toBe('alice');
      expect(at.azp).toBe(iam.workerClient.clientId);
    });

    it('without offline_access gives an online refresh token', async () => {
      const res = await exchange(await iam.issueUserToken({}));
      expect(res.status).toBe(200);
      expect(res.body.refresh_expires_in).toBe(1800);
      expect(typeof res.body.refresh_token).toBe('string');
      expect(String(res.body.scope)).not.toContain('offline_access');
    });

    it('echoes the audience parameter into the access token', async () => {
      const res = await exchange(await iam.issueUserToken({}), { audience: ['api-a', 'api-b'] });
      expect(res.status).toBe(200);
      expect(decodeJwt(res.body.access_token as string).aud).toEqual(['api-a', 'api-b']);
    });

    it('rejects an expired or forged subject token with 400 invalid_request', async () => {
      const expired = await iam.issueUserToken({ expiresInSeconds: -60 });
      const res = await standardExchange(expired);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', error_description: 'Invalid token' });
      expect((await standardExchange('not-a-jwt')).status).toBe(400);
      const valid = await iam.issueUserToken({});
      const forged = `${valid.slice(0, valid.lastIndexOf('.'))}.AAAA`;
      expect((await standardExchange(forged)).body.error).toBe('invalid_request');
    });
  });

  describe('V2 token exchange', () => {
    beforeEach(() => iam.configure({ mode: 'v2' }));

    it('requires subject_token_type', async () => {
      const res = await exchange(await iam.issueUserToken({}));
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'invalid_request', error_description: "Parameter 'subject_token_type' is required",
      });
      const wrongType = await exchange(await iam.issueUserToken({}), { subject_token_type: TT_REFRESH });
      expect(wrongType.status).toBe(400);
      expect(wrongType.body.error).toBe('invalid_request');
    });

    it('refuses offline_access', async () => {
      const res = await standardExchange(await iam.issueUserToken({}), { scope: 'offline_access' });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'invalid_request', error_description: 'Scope offline_access not allowed for token exchange',
      });
    });

    it('returns an online refresh token when requested (SAME_SESSION)', async () => {
      const res = await standardExchange(await iam.issueUserToken({}));
      expect(res.status).toBe(200);
      expect(typeof res.body.refresh_token).toBe('string');
      expect(res.body.refresh_expires_in).toBe(1800);
      expect(res.body.issued_token_type).toBe(TT_REFRESH);
      expect(decodeJwt(res.body.access_token as string).sub).toBe(ALICE.sub);
    });

    it('returns no refresh_token without SAME_SESSION or when not requested', async () => {
      iam.configure({ v2RefreshSameSession: false });
      const res = await standardExchange(await iam.issueUserToken({}));
      expect(res.status).toBe(200);
      expect('refresh_token' in res.body).toBe(false);
      expect(res.body.issued_token_type).toBe(TT_ACCESS);

      iam.configure({ v2RefreshSameSession: true });
      const accessOnly = await exchange(await iam.issueUserToken({}), { subject_token_type: TT_ACCESS });
      expect(accessOnly.status).toBe(200);
      expect('refresh_token' in accessOnly.body).toBe(false);
    });

    it('requires the worker in the subject token audience (403 access_denied)', async () => {
      const res = await standardExchange(await iam.issueUserToken({ audience: ['someone-else'] }));
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        error: 'access_denied', error_description: 'Client is not within the token audience',
      });
    });
  });

  describe('client authentication', () => {
    it('rejects a bad secret with 401 invalid_client', async () => {
      const res = await post(iam.tokenUrl, {
        grant_type: EXCHANGE, client_id: iam.workerClient.clientId, client_secret: 'wrong',
        subject_token: await iam.issueUserToken({}),
      });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials',
      });
      const unknown = await post(iam.tokenUrl, { grant_type: EXCHANGE, client_id: 'nope', client_secret: 'x', subject_token: 'x' });
      expect(unknown.status).toBe(401);
      expect(unknown.body.error).toBe('invalid_client');
    });

    it('accepts client_secret_basic', async () => {
      const { clientId, clientSecret } = iam.workerClient;
      const res = await post(iam.tokenUrl, {
        grant_type: EXCHANGE, subject_token: await iam.issueUserToken({}),
        subject_token_type: TT_ACCESS, requested_token_type: TT_REFRESH,
      }, `${clientId}:${clientSecret}`);
      expect(res.status).toBe(200);
      const refreshed = await post(iam.tokenUrl, {
        grant_type: 'refresh_token', refresh_token: res.body.refresh_token as string,
      }, `${clientId}:${clientSecret}`);
      expect(refreshed.status).toBe(200);
    });

    it('does not let the frontend client exchange', async () => {
      const res = await post(iam.tokenUrl, {
        grant_type: EXCHANGE, client_id: 'tokex-frontend', subject_token: await iam.issueUserToken({}),
      });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('unauthorized_client');
    });
  });

  describe('refresh', () => {
    it('rotates: the new token works; reusing the old one revokes the whole grant', async () => {
      const first = await standardExchange(await iam.issueUserToken({}), { scope: 'offline_access' });
      const rt1 = first.body.refresh_token as string;
      const second = await refresh(rt1);
      expect(second.status).toBe(200);
      expect(second.body).toMatchObject({ token_type: 'Bearer', refresh_expires_in: 0 });
      expect(String(second.body.scope)).toContain('offline_access');
      expect(decodeJwt(second.body.access_token as string).sub).toBe(ALICE.sub);
      const rt2 = second.body.refresh_token as string;
      expect(rt2).not.toBe(rt1);

      const reuse = await refresh(rt1);
      expect(reuse.status).toBe(400);
      expect(reuse.body.error).toBe('invalid_grant');
      const newest = await refresh(rt2);
      expect(newest.status).toBe(400);
      expect(newest.body.error).toBe('invalid_grant');
      expect((await introspect(rt2)).body.active).toBe(false);
    });

    it('detects concurrent reuse: one wins, then even the winner token is dead', async () => {
      const first = await standardExchange(await iam.issueUserToken({}));
      const rt1 = first.body.refresh_token as string;
      const results = await Promise.all([refresh(rt1), refresh(rt1)]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 400]);
      const winner = results.find((r) => r.status === 200);
      const again = await refresh(winner?.body.refresh_token as string);
      expect(again.status).toBe(400);
      expect(again.body.error).toBe('invalid_grant');
    });

    it('online refresh reports refresh_expires_in = SSO idle', async () => {
      const first = await standardExchange(await iam.issueUserToken({}));
      const res = await refresh(first.body.refresh_token as string);
      expect(res.status).toBe(200);
      expect(res.body.refresh_expires_in).toBe(1800);
    });

    it('without rotation the same refresh token works repeatedly', async () => {
      iam.configure({ rotateRefreshTokens: false });
      const first = await standardExchange(await iam.issueUserToken({}), { scope: 'offline_access' });
      let token = first.body.refresh_token as string;
      for (let i = 0; i < 3; i += 1) {
        const res = await refresh(token);
        expect(res.status).toBe(200);
        token = res.body.refresh_token as string;
      }
      expect((await refresh(first.body.refresh_token as string)).status).toBe(200);
    });

    it('offline idle: refreshing keeps it alive, idling kills it', async () => {
      iam.configure({ offlineSessionIdleSeconds: 2 });
      const first = await standardExchange(await iam.issueUserToken({}), { scope: 'offline_access' });
      let token = first.body.refresh_token as string;
      // oidc-provider's expiry has 1 s granularity, so refresh a bit more often than every second.
      const started = Date.now();
      while (Date.now() - started < 4500) {
        await sleep(700);
        const res = await refresh(token);
        expect(res.status).toBe(200);
        token = res.body.refresh_token as string;
      }
      await sleep(3000);
      const dead = await refresh(token);
      expect(dead.status).toBe(400);
      expect(dead.body.error).toBe('invalid_grant');
    });

    it('unknown refresh token is 400 invalid_grant', async () => {
      const res = await refresh('does-not-exist');
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_grant', error_description: 'Token is not active' });
    });
  });

  describe('sessions, introspection and revocation', () => {
    it('introspects access and refresh tokens', async () => {
      const res = await standardExchange(await iam.issueUserToken({}));
      const at = await introspect(res.body.access_token as string);
      expect(at.status).toBe(200);
      expect(at.body).toMatchObject({ active: true, sub: ALICE.sub, username: 'alice' });
      const rt = await introspect(res.body.refresh_token as string);
      expect(rt.body).toMatchObject({ active: true, sub: ALICE.sub });
      expect((await introspect('garbage')).body).toEqual({ active: false });
      const bad = await post(iam.introspectionUrl, { client_id: iam.workerClient.clientId, client_secret: 'x', token: 'x' });
      expect(bad.status).toBe(401);
      expect(iam.stats.introspection).toBe(4);
    });

    it('endUserSessions kills refresh tokens, access tokens and subject tokens', async () => {
      const subject = await iam.issueUserToken({ username: 'bob' });
      const online = await standardExchange(subject);
      const offline = await standardExchange(subject, { scope: 'offline_access' });
      expect(online.status).toBe(200);
      expect(offline.status).toBe(200);

      await iam.endUserSessions(BOB.sub);

      const r1 = await refresh(online.body.refresh_token as string);
      expect(r1.status).toBe(400);
      expect(r1.body).toEqual({ error: 'invalid_grant', error_description: 'Session not active' });
      const r2 = await refresh(offline.body.refresh_token as string);
      expect(r2.status).toBe(400);
      expect(r2.body).toEqual({ error: 'invalid_grant', error_description: 'Offline session not active' });
      expect((await introspect(online.body.access_token as string)).body.active).toBe(false);
      expect((await introspect(online.body.refresh_token as string)).body.active).toBe(false);

      const again = await standardExchange(subject);
      expect(again.status).toBe(400);
      expect(again.body).toEqual({ error: 'invalid_request', error_description: 'Invalid token' });
      // A new login works again.
      expect((await standardExchange(await iam.issueUserToken({ username: 'bob' }))).status).toBe(200);
    });

    it('revocation (RFC 7009) makes the refresh token inactive', async () => {
      const res = await standardExchange(await iam.issueUserToken({}), { scope: 'offline_access' });
      const token = res.body.refresh_token as string;
      const revoked = await post(iam.revocationUrl, { ...worker(), token, token_type_hint: 'refresh_token' });
      expect(revoked.status).toBe(200);
      expect((await introspect(token)).body.active).toBe(false);
      const refreshed = await refresh(token);
      expect(refreshed.status).toBe(400);
      expect(refreshed.body.error).toBe('invalid_grant');
      expect(iam.stats.revocation).toBe(1);
    });
  });

  describe('faults and stats', () => {
    it('failNext(2) answers 503 twice, then succeeds', async () => {
      const subject = await iam.issueUserToken({});
      iam.faults.failNext(2);
      const a = await standardExchange(subject);
      const b = await standardExchange(subject);
      const c = await standardExchange(subject);
      expect([a.status, b.status, c.status]).toEqual([503, 503, 200]);
      expect(a.body.error).toBeTypeOf('string');
      expect(iam.stats.exchange).toBe(3);
      expect(iam.stats.errors.temporarily_unavailable).toBe(2);
    });

    it('502/504 faults have an empty body', async () => {
      iam.faults.failNext(1, 502);
      const res = await refresh('whatever');
      expect(res.status).toBe(502);
      expect(res.text).toBe('');
      expect(iam.stats.errors.http_502).toBe(1);
      expect(iam.stats.refresh).toBe(1);
    });

    it('rateLimitNext answers 429 with Retry-After in seconds or as an HTTP date', async () => {
      const subject = await iam.issueUserToken({});
      iam.faults.rateLimitNext(1, '7');
      const seconds = await standardExchange(subject);
      expect(seconds.status).toBe(429);
      expect(seconds.headers.get('retry-after')).toBe('7');
      expect(seconds.body.error).toBe('rate_limited');

      const date = new Date(Date.now() + 5000).toUTCString();
      iam.faults.rateLimitNext(2, date);
      expect((await standardExchange(subject)).headers.get('retry-after')).toBe(date);
      expect((await post(iam.introspectionUrl, { ...worker(), token: 'x' })).status).toBe(429);
      expect((await standardExchange(subject)).status).toBe(200);
      expect(iam.stats.errors.rate_limited).toBe(3);
    });

    it('adds latency', async () => {
      iam.faults.setLatencyMs(200);
      const started = performance.now();
      expect((await refresh('x')).status).toBe(400);
      expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    });

    it('counts calls by grant and errors by code; resetStats clears them', async () => {
      await login();
      await login('alice', 'bad');
      const res = await standardExchange(await iam.issueUserToken({}));
      await refresh(res.body.refresh_token as string);
      await refresh('nope');
      expect(iam.stats).toMatchObject({ password: 2, exchange: 1, refresh: 2, introspection: 0, revocation: 0 });
      expect(iam.stats.errors).toEqual({ invalid_grant: 2 });
      iam.resetStats();
      expect(iam.stats).toEqual({ exchange: 0, refresh: 0, password: 0, introspection: 0, revocation: 0, errors: {} });
    });
  });

  it('control API: /dev/faults and /dev/stats (only when enabled)', async () => {
    const controlled = await startDevIam({ controlApi: true, mode: 'v2' });
    try {
      const origin = new URL(controlled.issuer).origin;
      const set = await fetch(`${origin}/dev/faults`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ failNext: 1, status: 500 }),
      });
      expect(set.status).toBe(200);
      const res = await post(controlled.tokenUrl, { grant_type: 'refresh_token', refresh_token: 'x' });
      expect(res.status).toBe(500);
      const stats = await (await fetch(`${origin}/dev/stats`)).json() as Record<string, unknown>;
      expect(stats).toMatchObject({ refresh: 1, errors: { unknown_error: 1 } });
      expect((await fetch(`${new URL(iam.issuer).origin}/dev/stats`)).status).toBe(404);
    } finally {
      await controlled.close();
    }
  });
});
