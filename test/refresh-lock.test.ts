import { afterAll, describe, expect, it } from 'vitest';
import { KeyLayout } from '../src/shared/keys.js';
import { UserLock } from '../src/shared/user-lock.js';
import { cleanupPrefix, testRedis, uniquePrefix } from './helpers/redis.js';
import { sleep } from './refresh-support.js';

describe('the per-user refresh lock', () => {
  const redis = testRedis();
  const prefix = uniquePrefix('lock');
  const keys = new KeyLayout(prefix);

  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('lets one owner in at a time and frees the user on release', async () => {
    const locks = new UserLock(redis, keys, { ttlMs: 5000 });
    const first = await locks.tryAcquire('u1');
    expect(first).not.toBeNull();
    expect(await locks.tryAcquire('u1')).toBeNull();
    expect(await locks.tryAcquire('u2')).not.toBeNull(); // other users are independent
    const owner = await redis.get(keys.lock('u1'));
    expect(owner).toMatch(/^[A-Za-z0-9_-]{16,}$/); // a random owner value, never a token
    await first!.release();
    expect(await redis.exists(keys.lock('u1'))).toBe(0);
  });

  it('never deletes the lock of a successor after its own expired (compare-and-delete)', async () => {
    const locks = new UserLock(redis, keys, { ttlMs: 300 });
    const stale = await locks.tryAcquire('u3');
    // Simulate a holder paused past its TTL: its timer could not extend the lock.
    await redis.del(keys.lock('u3'));
    const successor = await locks.tryAcquire('u3');
    expect(successor).not.toBeNull();
    await stale!.release();
    expect(await redis.exists(keys.lock('u3'))).toBe(1);
    await successor!.release();
    expect(await redis.exists(keys.lock('u3'))).toBe(0);
  });

  it('extends the lock while it is held, beyond its TTL', async () => {
    const locks = new UserLock(redis, keys, { ttlMs: 300 });
    const held = await locks.tryAcquire('u4');
    await sleep(900);
    expect(await redis.exists(keys.lock('u4'))).toBe(1);
    await held!.release();
    expect(await redis.exists(keys.lock('u4'))).toBe(0);
  });

  it('lets waiters through when the holder releases, and times out with lock_timeout otherwise', async () => {
    const locks = new UserLock(redis, keys, { ttlMs: 5000, pollMs: 10 });
    const held = await locks.tryAcquire('u5');
    const waiting = locks.waitUntilFree('u5', 2000);
    await sleep(100);
    await held!.release();
    await expect(waiting).resolves.toBeUndefined();
    const again = await locks.tryAcquire('u5');
    await expect(locks.waitUntilFree('u5', 200)).rejects.toMatchObject({ code: 'lock_timeout' });
    await again!.release();
  });
});
