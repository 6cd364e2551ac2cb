/**
 * Redis memory per stored user: saves N users with Keycloak-sized tokens through the TokenStore
 * (encrypted token set + metadata + due index + username index + events) and divides the growth of
 * `used_memory` by N. Run: `npx tsx bench/redis-memory.ts [users]` against the local Redis.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { KeyRing } from '../src/shared/crypto.js';
import { deleteKeysUnder } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';

const users = Number(process.argv[2] ?? 20_000);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `tokex-bench-mem-${randomUUID().slice(0, 8)}`;

/** A JWT shaped like Keycloak's: realistic claims, a 2048-bit RS256 signature. */
function keycloakLikeJwt(sub: string, typ: 'Bearer' | 'Offline'): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = typ === 'Bearer'
    ? {
      exp: now + 300, iat: now, jti: randomUUID(), iss: 'http://localhost:8081/realms/tokex', aud: ['tokex-worker', 'account'],
      sub, typ, azp: 'tokex-worker', sid: randomUUID(), acr: '1', 'allowed-origins': ['/*'],
      realm_access: { roles: ['offline_access', 'default-roles-tokex', 'uma_authorization'] },
      resource_access: { account: { roles: ['manage-account', 'manage-account-links', 'view-profile'] } },
      scope: 'openid profile email offline_access', email_verified: true, name: 'Demo User',
      preferred_username: `user-${sub.slice(0, 8)}`, given_name: 'Demo', family_name: 'User', email: `${sub.slice(0, 8)}@example.test`,
    }
    : { iat: now, jti: randomUUID(), iss: 'http://localhost:8081/realms/tokex', aud: 'http://localhost:8081/realms/tokex', sub, typ, azp: 'tokex-worker', sid: randomUUID(), scope: 'openid profile email offline_access' };
  const header = `{"alg":"${typ === 'Bearer' ? 'RS256' : 'HS512'}","typ" : "JWT","kid" : "${randomUUID()}"}`; // Keycloak's spacing
  return `${Buffer.from(header).toString('base64url')}.${enc(claims)}.${randomBytes(typ === 'Bearer' ? 256 : 64).toString('base64url')}`;
}

const redis = new Redis(redisUrl);
const store = new TokenStore({ redis, prefix, keyRing: KeyRing.parse(KeyRing.generateSpec('bench')), eventsMaxLen: 100_000 });
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

const before = await usedMemory();
let accessBytes = 0;
let refreshBytes = 0;
for (let i = 0; i < users; i += 1) {
  const userId = randomUUID();
  const accessToken = keycloakLikeJwt(userId, 'Bearer');
  const refreshToken = keycloakLikeJwt(userId, 'Offline');
  accessBytes += accessToken.length;
  refreshBytes += refreshToken.length;
  await store.save({
    userId, username: `user-${userId.slice(0, 8)}`, issuedAtMs: Date.now(),
    tokens: { accessToken, refreshToken, expiresInSeconds: 300, refreshExpiresInSeconds: 0, scope: 'openid profile email offline_access', tokenType: 'Bearer' },
  });
}
const after = await usedMemory();
const events = await redis.xlen(`${prefix}:events`);
const sample = await redis.memory('USAGE', `${prefix}:tok:${(await redis.zrange(`${prefix}:due`, 0, 0))[0]}`);
console.log(`users: ${users}; mean access token ${Math.round(accessBytes / users)} B, refresh token ${Math.round(refreshBytes / users)} B`);
console.log(`used_memory growth: ${((after - before) / 1024 / 1024).toFixed(1)} MiB = ${Math.round((after - before) / users)} bytes per user (token set, metadata, due and username indexes, ${events} events)`);
console.log(`MEMORY USAGE of one encrypted token set: ${sample} bytes`);

await deleteKeysUnder(redis, prefix);
redis.disconnect();
