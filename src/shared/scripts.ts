import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
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

/** Every script of the token store, loaded once per process. */
export const scripts = {
  saveTokens: new LuaScript('save-tokens-5.lua'),
  endTokens: new LuaScript('end-tokens-4.lua'),
  replaceIfEqual: new LuaScript('replace-if-equal-1.lua'),
  releaseLock: new LuaScript('release-lock-1.lua'),
  extendLock: new LuaScript('extend-lock-1.lua'),
  claimDue: new LuaScript('claim-due-1.lua'),
  markRefreshing: new LuaScript('mark-refreshing-1.lua'),
  unmarkRefreshing: new LuaScript('unmark-refreshing-1.lua'),
  unscheduleIdle: new LuaScript('unschedule-idle-3.lua'),
};
