import { Redis, type RedisOptions } from 'ioredis';
import { TokexError } from './errors.js';

/**
 * ioredis connection factories. BullMQ workers need `maxRetriesPerRequest: null` (they block
 * on commands); producers and readers must fail fast instead of queueing commands while Redis is down.
 */

/** A connection for BullMQ workers and schedulers: retries forever, reconnects with capped backoff. */
export function createWorkerConnection(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
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
export function createFastFailConnection(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    connectionName: 'tokex-client',
    ...options,
  });
}

/** Waits until `redis` is ready or `timeoutMs` passes; `redis_unavailable` otherwise. */
export async function waitUntilReady(redis: Redis, timeoutMs: number): Promise<void> {
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

/** Wraps an ioredis failure as `redis_unavailable` (messages from ioredis never contain values). */
export function asRedisError(err: unknown): TokexError {
  if (err instanceof TokexError) return err;
  return new TokexError('redis_unavailable', `Redis command failed: ${(err as Error)?.message ?? String(err)}`);
}
