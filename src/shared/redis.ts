import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { TokexError } from './errors.js';

/**
 * ioredis connection factories, for a single Redis or a Redis Cluster. BullMQ workers need
 * `maxRetriesPerRequest: null` (they block on commands); producers and readers must fail fast
 * instead of queueing commands while Redis is down.
 */

/** A connection to one Redis or to a Redis Cluster (both speak the same commands here). */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, or for a cluster a comma-separated list of seed node URLs. */
export interface RedisTarget {
  url: string;
  /** Connect as a Redis Cluster client. @defaultValue false */
  cluster?: boolean;
}

function connect(target: string | RedisTarget, options: RedisOptions): RedisClient {
  const { url, cluster } = typeof target === 'string' ? { url: target, cluster: false } : target;
  if (!cluster) return new Redis(url, options);
  const seeds = url.split(',').map((u) => new URL(u.trim()));
  const first = seeds[0];
  const { retryStrategy, enableOfflineQueue, ...nodeOptions } = options;
  return new Cluster(
    seeds.map((s) => ({ host: s.hostname, port: Number(s.port || 6379) })),
    {
      clusterRetryStrategy: retryStrategy,
      enableOfflineQueue,
      redisOptions: {
        ...nodeOptions,
        username: decodeURIComponent(first.username) || undefined,
        password: decodeURIComponent(first.password) || undefined,
        tls: first.protocol === 'rediss:' ? {} : undefined,
      },
    },
  );
}

/** A connection for BullMQ workers and schedulers: retries forever, reconnects with capped backoff. */
export function createWorkerConnection(target: string | RedisTarget, options: RedisOptions = {}): RedisClient {
  return connect(target, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    connectionName: 'tokex-worker',
    ...options,
  });
}

/**
 * A connection for producers and readers that fails fast instead of hanging: a command waits for at
 * most one reconnection attempt (`maxRetriesPerRequest: 1`) and then fails with an error the caller
 * maps to `redis_unavailable`. The offline queue stays on so that commands issued while the first
 * connection is still being made are not refused.
 */
export function createFastFailConnection(target: string | RedisTarget, options: RedisOptions = {}): RedisClient {
  return connect(target, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    connectionName: 'tokex-client',
    ...options,
  });
}

/**
 * The node that holds `key` (for SCAN, which a cluster client cannot run across nodes). With a
 * hash-tagged prefix every broker key lives on one node, so scanning that node sees them all.
 */
export async function nodeForKey(redis: RedisClient, key: string): Promise<Redis> {
  if (!(redis instanceof Cluster)) return redis;
  const slot = Number(await redis.cluster('KEYSLOT', key));
  const owner = redis.slots[slot]?.[0];
  const node = redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
  if (!node) throw new TokexError('redis_unavailable', `no cluster node serves slot ${slot} yet`);
  return node;
}

/**
 * Deletes every key under `<prefix>:` (SCAN + UNLINK on the node that holds the prefix); returns
 * how many. For throw-away data (the demo, tests, benchmarks), never for a live broker's prefix.
 */
export async function deleteKeysUnder(redis: RedisClient, prefix: string): Promise<number> {
  const node = await nodeForKey(redis, `${prefix}:x`);
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await node.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Waits until `redis` is ready or `timeoutMs` passes; `redis_unavailable` otherwise. */
export async function waitUntilReady(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new TokexError('redis_unavailable', `Redis did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** Redis replies that mean "not now" (a failover, a load, a busy script, a full Redis under noeviction): worth retrying. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|READONLY|MASTERDOWN|NOREPLICAS|MOVED|ASK|OOM)\b/;

/**
 * Wraps an ioredis failure: connection problems and transient replies become `redis_unavailable`
 * (retried); any other error reply (a script bug, a wrong key type) becomes `redis_rejected`, which
 * retrying would not fix. ioredis messages never contain values.
 */
export function asRedisError(err: unknown): TokexError {
  if (err instanceof TokexError) return err;
  const message = (err as Error)?.message ?? String(err);
  if ((err as Error)?.name === 'ReplyError' && !TRANSIENT_REPLY.test(message)) {
    return new TokexError('redis_rejected', `Redis refused the command: ${message.slice(0, 200)}`);
  }
  return new TokexError('redis_unavailable', `Redis command failed: ${message.slice(0, 200)}`);
}
