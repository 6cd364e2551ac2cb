import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHttpApi } from '../src/producer/http/server.js';
import { loadConfig } from '../src/shared/config.js';
import { createContext } from '../src/shared/context.js';
import { KeyRing } from '../src/shared/crypto.js';
import { isTokexError } from '../src/shared/errors.js';
import { captureLogger } from './helpers/logs.js';
import { API_KEY, fakeJwt, startApiHarness, type ApiHarness } from './helpers/http-api.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';

const future = () => Math.floor(Date.now() / 1000) + 600;
const tokens = (sub: string) => ({
  accessToken: fakeJwt({ sub, exp: future(), preferred_username: `${sub}-name` }),
  refreshToken: fakeJwt({ sub, typ: 'Offline' }),
  expiresInSeconds: 300,
  refreshExpiresInSeconds: 0,
  scope: 'openid offline_access',
  tokenType: 'Bearer',
});

describe('HTTP API routes (no worker running)', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApiHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('accepts a subject token with 202 and a job id, and the job is waiting', async () => {
    const token = fakeJwt({ sub: 'alice', exp: future() });
    const res = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: token, userId: 'alice' } });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    expect(jobId).toMatch(/^[0-9a-f-]{36}$/);
    const status = await h.call(`/v1/exchanges/${jobId}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toEqual({ jobId, state: 'waiting', userId: 'alice' });
    const data = JSON.stringify((await h.role.api.deps.exchangeQueue.getJob(jobId))?.data);
    expect(data).not.toContain(token);
  });

  it('accepts application/json with a charset and an opaque token without userId', async () => {
    const res = await h.call('/v1/exchanges', {
      method: 'POST', json: { subjectToken: 'opaque-token_123.abc~' }, headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(res.status).toBe(202);
  });

  it('answers 401 without a key, with a wrong key and with a non-bearer scheme, and enqueues nothing', async () => {
    const body = { subjectToken: fakeJwt({ sub: 'a', exp: future() }) };
    const before = await h.exchangeJobCount();
    const variants: Record<string, string>[] = [
      {}, { authorization: 'Bearer wrong' }, { authorization: 'Basic dGVzdA==' }, { authorization: 'Bearer ' },
      { authorization: `Bearer ${API_KEY}x` }, { authorization: `Bearer ${API_KEY.slice(0, -1)}` }, { authorization: API_KEY },
    ];
    for (const headers of variants) {
      const res = await h.call('/v1/exchanges', { method: 'POST', json: body, auth: false, headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
      expect(await res.json()).toMatchObject({ error: 'unauthorized' });
    }
    for (const path of ['/v1/exchanges/abc', '/v1/users/alice']) {
      expect((await h.call(path, { auth: false })).status).toBe(401);
    }
    expect((await h.call('/v1/users/alice/tokens', { method: 'DELETE', auth: false })).status).toBe(401);
    expect(await h.exchangeJobCount()).toBe(before);
  });

  it('accepts every configured key, and the scheme case-insensitively', async () => {
    for (const authorization of ['Bearer other-key', `bearer ${API_KEY}`]) {
      const res = await h.call('/v1/exchanges', {
        method: 'POST', json: { subjectToken: fakeJwt({ sub: 'b', exp: future() }) }, headers: { authorization },
      });
      expect(res.status).toBe(202);
    }
  });

  it('answers 413 body_too_large above 32 KiB, and nothing is enqueued', async () => {
    const before = await h.exchangeJobCount();
    const res = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: 'a'.repeat(40 * 1024) } });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'body_too_large' });
    expect(await h.exchangeJobCount()).toBe(before);
  });

  it('answers 415 for anything but JSON, and nothing is enqueued', async () => {
    const before = await h.exchangeJobCount();
    const token = fakeJwt({ sub: 'c', exp: future() });
    const cases: [string | undefined, string][] = [
      ['text/plain', JSON.stringify({ subjectToken: token })],
      ['application/x-www-form-urlencoded', `subjectToken=${token}`],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="subjectToken"\r\n\r\n${token}\r\n--x--`],
      ['application/xml', `<subjectToken>${token}</subjectToken>`],
      ['application/octet-stream', token],
    ];
    for (const [type, body] of cases) {
      const res = await h.call('/v1/exchanges', { method: 'POST', body, headers: type ? { 'content-type': type } : {} });
      expect(res.status, type).toBe(415);
      expect(await res.json()).toMatchObject({ error: 'unsupported_media_type' });
    }
    const empty = await h.call('/v1/exchanges', { method: 'POST' });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ error: 'invalid_input' });
    expect(await h.exchangeJobCount()).toBe(before);
  });

  it('reports the producer\'s codes: expired token, mismatched userId', async () => {
    const expired = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: fakeJwt({ sub: 'd', exp: 1000 }) } });
    expect(expired.status).toBe(400);
    expect(await expired.json()).toMatchObject({ error: 'subject_token_expired' });
    const mismatch = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: fakeJwt({ sub: 'd', exp: future() }), userId: 'e' } });
    expect(await mismatch.json()).toMatchObject({ error: 'user_mismatch' });
  });

  it('GET /v1/exchanges/:jobId: 404 for an unknown job, 400 for a bad id or wait, and a bounded wait', async () => {
    const unknown = await h.call('/v1/exchanges/00000000-0000-0000-0000-000000000000');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'not_found' });
    for (const path of ['/v1/exchanges/bad%20id', '/v1/exchanges/a:b']) {
      const res = await h.call(path);
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_input' });
    }
    const { jobId } = (await (await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: fakeJwt({ sub: 'f', exp: future() }) } })).json()) as { jobId: string };
    for (const wait of ['31', '-1', 'soon']) {
      const res = await h.call(`/v1/exchanges/${jobId}?wait=${wait}`);
      expect(res.status, wait).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_input' });
    }
    // No worker runs: a short wait ends with the job still waiting.
    const waited = await h.call(`/v1/exchanges/${jobId}?wait=0.3`);
    expect(await waited.json()).toEqual({ jobId, state: 'waiting' });
  });

  it('GET /v1/users/:userId: the stored status without tokens; 404 unknown; 400 invalid id', async () => {
    const t = tokens('user-g');
    await h.store.save({ userId: 'user-g', tokens: t, issuedAtMs: Date.now(), username: 'user-g-name' });
    const res = await h.call('/v1/users/user-g');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(t.accessToken);
    expect(text).not.toContain(t.refreshToken);
    expect(JSON.parse(text)).toMatchObject({ userId: 'user-g', state: 'active', offline: true, refreshable: true, username: 'user-g-name', version: 1 });
    expect(JSON.parse(text)).not.toHaveProperty('accessToken');
    const missing = await h.call('/v1/users/nobody');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });
    const bad = await h.call('/v1/users/has%20space');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'user_id_invalid' });
  });

  it('DELETE /v1/users/:userId/tokens: 204, tokens gone, state revoked, event emitted; 404 for unknown', async () => {
    // The dev IAM does not know this fake refresh token; RFC 7009 answers 200 anyway.
    await h.store.save({ userId: 'user-h', tokens: tokens('user-h'), issuedAtMs: Date.now() });
    const res = await h.call('/v1/users/user-h/tokens', { method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(await h.store.get('user-h')).toBeNull();
    expect(await h.store.status('user-h')).toMatchObject({ state: 'revoked', reason: 'revoked_by_api', refreshable: false });
    const events = await h.redis.xrange(h.store.keys.events, '-', '+');
    expect(events.some(([, f]) => f.includes('user-h') && f.includes('revoked'))).toBe(true);
    expect(h.iam.stats.revocation).toBeGreaterThanOrEqual(1);
    // Revoking again is harmless; an unknown user is 404.
    expect((await h.call('/v1/users/user-h/tokens', { method: 'DELETE' })).status).toBe(204);
    const missing = await h.call('/v1/users/nobody/tokens', { method: 'DELETE' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });
  });

  it('DELETE keeps the tokens and answers 503 when the IAM revocation endpoint fails', async () => {
    await h.store.save({ userId: 'user-i', tokens: tokens('user-i'), issuedAtMs: Date.now() });
    h.iam.faults.failNext(1, 503);
    const res = await h.call('/v1/users/user-i/tokens', { method: 'DELETE' });
    h.iam.faults.reset();
    if (res.status === 204) throw new Error('fault injection on revocation did not take effect');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect(await res.json()).toMatchObject({ error: 'iam_unavailable' });
    expect(await h.store.get('user-i')).not.toBeNull();
  });

  it('answers 404 not_found for unknown routes, as JSON', async () => {
    const res = await h.call('/v2/nothing');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found' });
  });

  it('serves health, readiness, metrics and the OpenAPI document without a key', async () => {
    expect(await (await h.call('/healthz', { auth: false })).json()).toEqual({ status: 'ok' });
    const ready = await h.call('/readyz', { auth: false });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { redis: 'ok', exchangeQueue: 'ok', refreshQueue: 'ok', queueEvents: 'ok' } });
    const metrics = await h.call('/metrics', { auth: false });
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('tokex_http_exchange_requests_total');
    const doc = (await (await h.call('/openapi.json', { auth: false })).json()) as {
      openapi: string; paths: Record<string, Record<string, { security?: unknown; requestBody?: unknown }>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining([
      '/v1/exchanges', '/v1/exchanges/{jobId}', '/v1/users/{userId}', '/v1/users/{userId}/tokens', '/healthz', '/readyz', '/metrics',
    ]));
    expect(doc.paths['/v1/exchanges']?.post?.security).toEqual([{ apiKey: [] }]);
    expect(JSON.stringify(doc.paths['/v1/exchanges']?.post?.requestBody)).toContain('subjectToken');
    expect(JSON.stringify(doc)).not.toContain('/admin/queues');
  });

  it('never logs a subject token, an API key or a request body', async () => {
    const token = fakeJwt({ sub: 'log-check', exp: future() });
    await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: token } });
    await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: `${token}!` } });
    await h.call('/v1/exchanges', { method: 'POST', json: `{"subjectToken":"${token}"` });
    const logs = h.logs.text();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(token.split('.')[1]);
    expect(logs).not.toContain(API_KEY);
    expect(logs).not.toContain('[REDACTED]');
  });
});

describe('HTTP API configuration', () => {
  const prefixes: string[] = [];
  const env = (extra: Record<string, string>) => {
    const prefix = uniquePrefix('http-cfg');
    prefixes.push(prefix);
    return { REDIS_URL: TEST_REDIS_URL, TOKEX_PREFIX: prefix, TOKEN_ENCRYPTION_KEYS: KeyRing.generateSpec('k'), ...extra };
  };
  afterAll(async () => {
    const redis = testRedis();
    for (const prefix of prefixes) await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('refuses to start without API keys unless PRODUCER_AUTH=none', async () => {
    const ctx = createContext(loadConfig({ env: env({}) }), captureLogger().logger);
    try {
      const err = await buildHttpApi(ctx).catch((e: unknown) => e);
      expect(isTokexError(err, 'config_invalid')).toBe(true);
      expect((err as Error).message).toContain('PRODUCER_API_KEYS');
    } finally {
      await ctx.close();
    }
    const open = createContext(loadConfig({ env: env({ PRODUCER_AUTH: 'none' }) }), captureLogger().logger);
    const api = await buildHttpApi(open, { port: 0 });
    try {
      const url = await api.listen();
      const res = await fetch(`${url}/v1/users/nobody`);
      expect(res.status).toBe(404);
    } finally {
      await api.close();
      await open.close();
    }
  });

  it('refuses IAM_REVOCATION_URL without IAM client credentials', async () => {
    const ctx = createContext(loadConfig({ env: env({ PRODUCER_API_KEYS: 'k', IAM_REVOCATION_URL: 'http://127.0.0.1:1/revoke' }) }), captureLogger().logger);
    try {
      const err = await buildHttpApi(ctx).catch((e: unknown) => e);
      expect(isTokexError(err, 'config_invalid')).toBe(true);
    } finally {
      await ctx.close();
    }
  });

  it('answers 503 redis_unavailable and not ready while Redis is unreachable, and stays up', async () => {
    const ctx = createContext(loadConfig({ env: env({ PRODUCER_API_KEYS: 'k', REDIS_URL: 'redis://127.0.0.1:1' }) }), captureLogger().logger);
    const api = await buildHttpApi(ctx, { port: 0 });
    try {
      const url = await api.listen();
      const headers = { authorization: 'Bearer k', 'content-type': 'application/json' };
      const post = await fetch(`${url}/v1/exchanges`, { method: 'POST', headers, body: JSON.stringify({ subjectToken: fakeJwt({ sub: 'x', exp: future() }) }) });
      expect(post.status).toBe(503);
      expect(post.headers.get('retry-after')).toBeTruthy();
      expect(await post.json()).toMatchObject({ error: 'redis_unavailable' });
      const user = await fetch(`${url}/v1/users/x`, { headers });
      expect(user.status).toBe(503);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'not_ready' });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/metrics`)).status).toBe(200);
    } finally {
      await api.close();
      await ctx.close();
    }
  });
});
