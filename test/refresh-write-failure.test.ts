import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { IamClient } from '../src/shared/iam-client.js';
import { createFastFailConnection, waitUntilReady } from '../src/shared/redis.js';
import { scripts } from '../src/shared/scripts.js';
import { TokenStore } from '../src/shared/token-store.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { captureLogger, eventually } from './helpers/logs.js';
import { events, exchangeUser, makeUsers, sleep } from './refresh-support.js';

const users = makeUsers(3, 'wfail');

/** The real connection, except that the first token-set write it sends fails like a dropped connection. */
function failFirstSave(real: Redis): { redis: Redis; failures: () => number } {
  let failures = 0;
  const redis = new Proxy(real, {
    get(target, prop) {
      if (prop === 'evalsha') {
        return (...args: unknown[]) => {
          if (args[0] === scripts.saveTokens.script.sha && failures === 0) {
            failures += 1;
            return Promise.reject(new Error('Connection is closed.'));
          }
          return (target.evalsha as (...a: unknown[]) => Promise<unknown>)(...args);
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { redis, failures: () => failures };
}

describe('refresh failures', () => {
  let iam: DevIam;
  let h: Harness;

  beforeAll(async () => {
    iam = await startDevIam({ users, accessTokenTtlSeconds: 3, rotateRefreshTokens: true });
    h = await startHarness({ iam, roles: ['worker', 'refresh', 'scheduler'], env: { REFRESH_TICK_MS: '200', REFRESH_SKEW_SECONDS: '1' } });
  });
  afterAll(async () => {
    await h?.close();
    await iam?.close();
  });

  it('still stores the new tokens when the Redis write fails once right after the IAM refreshed them', async () => {
    const sub = users[0].sub;
    await exchangeUser(h, sub);
    await h.redis.zrem(h.store.keys.due, sub); // only the reader below refreshes this user
    const real = createFastFailConnection(h.config.redisUrl) as Redis;
    await waitUntilReady(real, 5000);
    const { redis, failures } = failFirstSave(real);
    const logs = captureLogger('debug');
    const store = new TokenStore({
      redis, prefix: h.prefix, keyRing: h.config.keyRing, logger: logs.logger,
      iam: new IamClient({ tokenUrl: iam.tokenUrl, ...iam.workerClient }),
    });
    try {
      const before = await h.store.get(sub);
      await sleep(Math.max(0, before!.status.accessExpiresAtMs - 900 - Date.now()));
      const refreshes = iam.stats.refresh;
      const token = await store.getAccessToken(sub, { minValiditySeconds: 2 });
      expect(failures()).toBe(1);
      expect(iam.stats.refresh).toBe(refreshes + 1);
      const after = await h.store.get(sub);
      expect(after?.accessToken).toBe(token);
      expect(after?.refreshToken).not.toBe(before?.refreshToken);
      expect(after?.status.version).toBe(before!.status.version + 1);
      expect(logs.text()).toMatch(/retrying with the tokens held in memory/);
      expect((await events(h)).filter((e) => e.user === sub).map((e) => e.state)).toEqual(['stored', 'refreshed']);
      // With rotation on, only the stored new refresh token works: one more refresh succeeds.
      await sleep(Math.max(0, after!.status.accessExpiresAtMs - 900 - Date.now()));
      await expect(store.getAccessToken(sub, { minValiditySeconds: 2 })).resolves.toMatch(/^eyJ/);
      expect(iam.stats.errors.invalid_grant ?? 0).toBe(0);
      expect(logs.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    } finally {
      real.disconnect();
    }
  });

  it('retries a refresh the IAM answers with 503, and slows down on 429, without losing the session', async () => {
    const sub = users[1].sub;
    await exchangeUser(h, sub);
    const version = (await h.store.status(sub))!.version;
    iam.faults.failNext(2, 503);
    // Due within ~2 s; the two first calls fail, the retry (1 s backoff) succeeds.
    const refreshed = (await eventually(async () => {
      const s = await h.store.status(sub);
      return s && s.version > version ? s : null;
    }, 20_000))!;
    expect(refreshed.state).toBe('active');
    iam.faults.rateLimitNext(1, '1');
    await eventually(async () => ((await h.store.status(sub))?.version ?? 0) > refreshed.version, 20_000);
    expect((await h.store.status(sub))?.state).toBe('active');
    expect(iam.stats.errors.invalid_grant ?? 0).toBe(0);
    expect(h.logs.text()).toMatch(/pausing the refresh queue/);
  });

  it('takes a user without stored tokens out of the due index instead of retrying it every tick', async () => {
    await h.redis.zadd(h.store.keys.due, Date.now() - 1, 'ghost-user');
    await eventually(async () => (await h.redis.zscore(h.store.keys.due, 'ghost-user')) === null, 10_000);
  });
});
