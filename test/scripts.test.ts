import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../src/shared/crypto.js';
import { scripts } from '../src/shared/scripts.js';
import { TokenStore } from '../src/shared/token-store.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';
import { HAS_REDIS_SERVER, startOwnRedisServer, type OwnRedisServer } from './helpers/redis-server.js';

/**
 * Token writes made in one event-loop iteration go to Redis as one pipeline (BatchedScript). On a
 * Redis of its own, so the first batch finds the script not loaded yet (NOSCRIPT) and so that the
 * commands Redis received can be counted.
 */
describe.skipIf(!HAS_REDIS_SERVER)('batched token writes', () => {
  let server: OwnRedisServer;
  let redis: Redis;
  let store: TokenStore;
  const keyRing = KeyRing.parse(KeyRing.generateSpec('b'));
  const tokens = (sub: string) => ({
    accessToken: fakeJwt({ sub, exp: epochSeconds(300) }), refreshToken: fakeJwt({ sub, typ: 'Offline' }),
    expiresInSeconds: 300, refreshExpiresInSeconds: 0, tokenType: 'Bearer',
  });

  beforeAll(async () => {
    server = await startOwnRedisServer();
    redis = new Redis(server.url, { maxRetriesPerRequest: 2 });
    store = new TokenStore({ redis, prefix: 'batch', keyRing });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.close();
  });

  const evalshaCalls = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);

  it('gives each concurrent writer its own outcome, falling back to EVAL when the script is not loaded', async () => {
    expect(await redis.script('EXISTS', scripts.saveTokens.script.sha)).toEqual([0]);
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const sets = users.map((u) => tokens(u));
    const first = await Promise.all(users.map((userId, i) => store.save({ userId, tokens: sets[i], issuedAtMs: Date.now() })));
    expect(first.map((r) => r.version)).toEqual(users.map(() => 1));
    for (const [i, userId] of users.entries()) expect((await store.get(userId))?.accessToken).toBe(sets[i].accessToken);

    // Loaded now: one batch, one stale writer among them.
    const outcomes = await Promise.allSettled(users.map((userId, i) =>
      store.save({ userId, tokens: tokens(userId), issuedAtMs: Date.now(), expectedVersion: i === 7 ? 5 : 1 })));
    expect(outcomes.map((o) => o.status)).toEqual(users.map((_, i) => (i === 7 ? 'rejected' : 'fulfilled')));
    expect((outcomes[7] as PromiseRejectedResult).reason).toMatchObject({ code: 'stale_write' });
    expect(await store.get('user-7')).toMatchObject({ accessToken: sets[7].accessToken, status: { version: 1 } });
  });

  it('sends the writes of one iteration in one socket write, and a lone write at once', async () => {
    const socket = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const realWrite = socket.write;
    let writes = 0;
    socket.write = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return realWrite.apply(this, args);
    };
    try {
      const before = await evalshaCalls();
      writes = 0;
      await Promise.all(Array.from({ length: 10 }, (_, i) => store.save({ userId: `p-${i}`, tokens: tokens(`p-${i}`), issuedAtMs: Date.now() })));
      expect(writes).toBe(1);
      expect(await evalshaCalls()).toBe(before + 10);
      writes = 0;
      await store.save({ userId: 'lone', tokens: tokens('lone'), issuedAtMs: Date.now() });
      expect(writes).toBe(1);
    } finally {
      socket.write = realWrite;
    }
  });
});
