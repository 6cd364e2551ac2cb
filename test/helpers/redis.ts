import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { deleteKeysUnder, nodeForKey, type RedisClient } from '../../src/shared/redis.js';

/** The Redis every test talks to (the machine's, or REDIS_URL). */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A prefix no other test uses, so suites can run in parallel on one Redis. */
export function uniquePrefix(label = 't'): string {
  return `tokex-test-${label}-${randomUUID().slice(0, 8)}`;
}

/** A plain connection for assertions and cleanup. */
export function testRedis(): Redis {
  return new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
}

/** Every key under a prefix. */
export async function keysUnder(redis: RedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  const node = await nodeForKey(redis, `${prefix}:x`);
  let cursor = '0';
  do {
    const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** Deletes every key under a prefix. */
export async function cleanupPrefix(redis: RedisClient, prefix: string): Promise<void> {
  await deleteKeysUnder(redis, prefix);
}

/**
 * Dumps every key and value under a prefix as text (strings, hashes, lists, sets, zsets, streams),
 * for scans that prove no token is stored in plaintext.
 */
export async function dumpPrefix(redis: RedisClient, prefix: string): Promise<string> {
  const parts: string[] = [];
  for (const key of await keysUnder(redis, prefix)) {
    const type = await redis.type(key);
    parts.push(key);
    if (type === 'string') parts.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES')));
    else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
  }
  return parts.join('\n');
}
