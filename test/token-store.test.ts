import { afterAll, describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import { KeyRing, tokenSetAad } from '../src/shared/crypto.js';
import { TOKEN_SET_FORMAT } from '../src/shared/token-set-codec.js';
import type { TokenResponse } from '../src/shared/iam-outcome.js';
import { createFastFailConnection } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';
import { cleanupPrefix, testRedis, uniquePrefix } from './helpers/redis.js';

const redis = testRedis();
const prefix = uniquePrefix('store');
const keyRing = KeyRing.parse(KeyRing.generateSpec('s'));
const store = new TokenStore({ redis, prefix, keyRing });

afterAll(async () => {
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});

function tokens(overrides: Partial<TokenResponse> = {}): TokenResponse {
  return {
    accessToken: fakeJwt({ sub: 'u', exp: epochSeconds(300) }),
    expiresInSeconds: 300,
    refreshToken: fakeJwt({ typ: 'Offline' }),
    refreshExpiresInSeconds: 0,
    scope: 'offline_access',
    tokenType: 'Bearer',
    ...overrides,
  };
}

describe('TokenStore', () => {
  it('round-trips a token set and never stores it readable', async () => {
    const t = tokens();
    const { version } = await store.save({ userId: 'u1', tokens: t, issuedAtMs: Date.now(), username: 'una' });
    expect(version).toBe(1);
    const set = await store.get('u1');
    expect(set).toMatchObject({ accessToken: t.accessToken, refreshToken: t.refreshToken, status: { state: 'active', offline: true, username: 'una' } });
    const raw = await redis.getBuffer(`${prefix}:tok:u1`);
    const signature = t.accessToken.split('.')[2];
    expect(raw!.includes(Buffer.from(signature))).toBe(false);
    expect(raw!.includes(Buffer.from(signature, 'base64url'))).toBe(false);
    expect((await store.getByUsername('una'))?.status.userId).toBe('u1');
  });

  it('reads a token set stored in the previous layout (format 1), and a save rewrites it', async () => {
    const t = tokens();
    await store.save({ userId: 'u-old', tokens: tokens(), issuedAtMs: Date.now() });
    const formatOne = deflateRawSync(Buffer.from(JSON.stringify({ accessToken: t.accessToken, refreshToken: t.refreshToken })));
    await redis.set(`${prefix}:tok:u-old`, keyRing.seal(formatOne, tokenSetAad('u-old')));
    expect(await store.get('u-old')).toMatchObject({ accessToken: t.accessToken, refreshToken: t.refreshToken });
    await store.save({ userId: 'u-old', tokens: t, issuedAtMs: Date.now() + 1 });
    const plaintext = keyRing.open((await redis.getBuffer(`${prefix}:tok:u-old`))!, tokenSetAad('u-old'));
    expect(plaintext[0]).toBe(TOKEN_SET_FORMAT);
    expect((await store.get('u-old'))?.accessToken).toBe(t.accessToken);
  });

  it('stores an odd scope from the IAM (a lone surrogate) without losing the metadata', async () => {
    await store.save({ userId: 'u-scope', tokens: tokens({ scope: 'openid \udc00profile' }), issuedAtMs: Date.now() });
    expect(await store.status('u-scope')).toMatchObject({ state: 'active', scope: 'openid \ufffdprofile' });
  });

  it('never replaces a newer token set with an older one', async () => {
    const now = Date.now();
    const newer = tokens();
    await store.save({ userId: 'u2', tokens: newer, issuedAtMs: now });
    await expect(store.save({ userId: 'u2', tokens: tokens(), issuedAtMs: now - 1000 })).rejects.toMatchObject({ code: 'stale_write' });
    expect((await store.get('u2'))?.accessToken).toBe(newer.accessToken);
  });

  it('refuses a conditional write when the version moved', async () => {
    await store.save({ userId: 'u3', tokens: tokens(), issuedAtMs: Date.now() });
    await store.save({ userId: 'u3', tokens: tokens(), issuedAtMs: Date.now() });
    await expect(store.save({ userId: 'u3', tokens: tokens(), issuedAtMs: Date.now(), expectedVersion: 1 }))
      .rejects.toMatchObject({ code: 'stale_write' });
    await expect(store.save({ userId: 'u3', tokens: tokens(), issuedAtMs: Date.now(), expectedVersion: 2 }))
      .resolves.toMatchObject({ version: 3 });
  });

  it('tells online from offline refresh tokens and leaves unrefreshable sets out of the due index', async () => {
    const issuedAtMs = Date.now();
    const online = await store.save({ userId: 'u4', tokens: tokens({ refreshToken: 'opaque', refreshExpiresInSeconds: 1800 }), issuedAtMs });
    expect(online.status).toMatchObject({ offline: false, refreshExpiresAtMs: issuedAtMs + 1_800_000 });
    const typed = await store.save({ userId: 'u5', tokens: tokens({ refreshToken: fakeJwt({ typ: 'Refresh' }), refreshExpiresInSeconds: undefined }), issuedAtMs });
    expect(typed.status.offline).toBe(false);
    const none = await store.save({ userId: 'u6', tokens: tokens({ refreshToken: undefined, refreshExpiresInSeconds: undefined }), issuedAtMs });
    expect(none.status).toMatchObject({ refreshable: false, dueAtMs: null });
    expect(await redis.zscore(`${prefix}:due`, 'u6')).toBeNull();
    expect(await redis.zscore(`${prefix}:due`, 'u4')).not.toBeNull();
  });

  it('cannot be read with a token set moved to another user', async () => {
    await store.save({ userId: 'victim', tokens: tokens(), issuedAtMs: Date.now() });
    await store.save({ userId: 'thief', tokens: tokens(), issuedAtMs: Date.now() });
    await redis.copy(`${prefix}:tok:victim`, `${prefix}:tok:thief`, 'REPLACE');
    await expect(store.get('thief')).rejects.toMatchObject({ code: 'decrypt_failed' });
  });

  it('ends a user: deletes the tokens, keeps the metadata with the reason, leaves the due index', async () => {
    await store.save({ userId: 'u7', tokens: tokens(), issuedAtMs: Date.now() });
    await store.end('u7', 'reauth_required', 'invalid_grant');
    expect(await store.get('u7')).toBeNull();
    expect(await store.status('u7')).toMatchObject({ state: 'reauth_required', reason: 'invalid_grant', refreshable: false, dueAtMs: null });
    await expect(store.end('nobody', 'revoked', 'x')).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('Redis failures', () => {
  it('tells a refused command (a bug, not worth retrying) from Redis being away', async () => {
    await redis.set(`${prefix}:due`, 'not a sorted set');
    try {
      await expect(store.save({ userId: 'u9', tokens: tokens(), issuedAtMs: Date.now() })).rejects.toMatchObject({ code: 'redis_rejected' });
    } finally {
      await redis.del(`${prefix}:due`);
    }
    const away = new TokenStore({ redis: createFastFailConnection('redis://127.0.0.1:1'), prefix, keyRing });
    away.redis.on('error', () => {});
    await expect(away.status('u1')).rejects.toMatchObject({ code: 'redis_unavailable' });
    away.redis.disconnect();
  });
});
