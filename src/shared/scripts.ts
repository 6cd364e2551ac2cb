import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis.js';

/** A Lua script from `src/shared/lua/<name>-<numKeys>.lua`, run by EVALSHA with an EVAL fallback. */
export class LuaScript {
  readonly lua: string;
  readonly sha: string;
  readonly numKeys: number;

  constructor(readonly fileName: string) {
    this.lua = readFileSync(new URL(`./lua/${fileName}`, import.meta.url), 'utf8');
    this.sha = createHash('sha1').update(this.lua).digest('hex');
    const match = /-(\d+)\.lua$/.exec(fileName);
    if (!match) throw new Error(`script name ${fileName} must end in -<numKeys>.lua`);
    this.numKeys = Number(match[1]);
  }

  /** Runs the script; loads it on the server first when the server does not know it yet. */
  async run<T = unknown>(redis: RedisClient, keys: string[], args: (string | number | Buffer)[]): Promise<T> {
    if (keys.length !== this.numKeys) throw new Error(`${this.fileName} takes ${this.numKeys} keys`);
    try {
      return (await redis.evalsha(this.sha, this.numKeys, ...keys, ...args)) as T;
    } catch (err) {
      if (!String((err as Error)?.message).includes('NOSCRIPT')) throw err;
      return (await redis.eval(this.lua, this.numKeys, ...keys, ...args)) as T;
    }
  }
}

interface Pending {
  keys: string[];
  args: (string | number | Buffer)[];
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Runs a script like {@link LuaScript.run}, but the calls made during one event-loop iteration go to
 * Redis as one pipeline (one socket write, one read) when it ends (`setImmediate`), each caller
 * getting its own reply or error. An exchange worker at full speed finishes ~13 jobs per iteration,
 * and this saves ~25 µs of CPU per token write (BENCHMARKS.md, "Exchange throughput"). Not on a
 * Cluster, where the keys of one batch may live on different nodes.
 *
 * ioredis's `enableAutoPipelining` batches the same way, but for every command of the connection
 * and with more work per command: on the store's connection it measured ~20 µs more CPU per
 * exchange than this (median 263 against 242 µs, alternating rounds in one process).
 */
export class BatchedScript {
  private readonly queues = new Map<RedisClient, Pending[]>();

  constructor(readonly script: LuaScript) {}

  run<T = unknown>(redis: RedisClient, keys: string[], args: (string | number | Buffer)[]): Promise<T> {
    if (redis instanceof Cluster || keys.length !== this.script.numKeys) return this.script.run<T>(redis, keys, args);
    let queue = this.queues.get(redis);
    if (!queue) {
      queue = [];
      this.queues.set(redis, queue);
      setImmediate(() => this.flush(redis));
    }
    return new Promise<T>((resolve, reject) => queue.push({ keys, args, resolve: resolve as (v: unknown) => void, reject }));
  }

  private flush(redis: RedisClient): void {
    const queue = this.queues.get(redis) ?? [];
    this.queues.delete(redis);
    if (queue.length === 1) {
      const [only] = queue;
      this.script.run(redis, only.keys, only.args).then(only.resolve, only.reject);
      return;
    }
    let sent: ReturnType<ReturnType<RedisClient['pipeline']>['exec']>;
    try {
      const pipeline = redis.pipeline();
      for (const p of queue) pipeline.evalsha(this.script.sha, this.script.numKeys, ...p.keys, ...p.args);
      sent = pipeline.exec();
    } catch (err) {
      // Runs from setImmediate: a throw here would be uncaught, so every caller gets it instead.
      for (const p of queue) p.reject(err);
      return;
    }
    sent.then((replies) => {
      queue.forEach((p, i) => {
        const [err, value] = replies?.[i] ?? [new Error('no reply'), null];
        if (!err) p.resolve(value);
        else if (String(err.message).includes('NOSCRIPT')) this.script.run(redis, p.keys, p.args).then(p.resolve, p.reject);
        else p.reject(err);
      });
    }, (err: unknown) => queue.forEach((p) => p.reject(err)));
  }
}

/** Every script of the token store, loaded once per process. */
export const scripts = {
  saveTokens: new BatchedScript(new LuaScript('save-tokens-5.lua')),
  endTokens: new LuaScript('end-tokens-4.lua'),
  replaceIfEqual: new LuaScript('replace-if-equal-1.lua'),
  releaseLock: new LuaScript('release-lock-1.lua'),
  extendLock: new LuaScript('extend-lock-1.lua'),
  claimDue: new LuaScript('claim-due-1.lua'),
  markRefreshing: new LuaScript('mark-refreshing-1.lua'),
  unmarkRefreshing: new LuaScript('unmark-refreshing-1.lua'),
  unscheduleIdle: new LuaScript('unschedule-idle-3.lua'),
};
