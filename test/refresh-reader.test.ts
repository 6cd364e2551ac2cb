import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { IamClient } from '../src/shared/iam-client.js';
import { createFastFailConnection, waitUntilReady } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';
import { runTick } from '../src/worker/scheduler.js';
import { Queue } from 'bullmq';
import { REFRESH_QUEUE } from '../src/shared/job-contract.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { dumpPrefix } from './helpers/redis.js';
import { eventually } from './helpers/logs.js';
import { exchangeUser, jwtExpMs, makeUsers, sleep } from './refresh-support.js';

const users = makeUsers(3, 'reader');

describe('getAccessToken and the rotation race', () => {
  let iam: DevIam;
  let h: Harness;

  beforeAll(async () => {
    iam = await startDevIam({ users, accessTokenTtlSeconds: 3, offlineSessionIdleSeconds: 60, rotateRefreshTokens: true });
    // No scheduler role: the test fires the tick itself, at the worst moment.
    h = await startHarness({ iam, roles: ['worker', 'refresh'], env: { REFRESH_SKEW_SECONDS: '1' } });
  });
  afterAll(async () => {
    await h?.close();
    await iam?.close();
  });

  it('returns the stored access token while it is valid long enough, without calling the IAM', async () => {
    const sub = users[0].sub;
    await exchangeUser(h, sub);
    const refreshesBefore = iam.stats.refresh;
    const token = await h.store.getAccessToken(sub, { minValiditySeconds: 1 });
    expect(jwtExpMs(token)).toBeGreaterThan(Date.now());
    expect((await h.store.get(sub))?.accessToken).toBe(token);
    expect(iam.stats.refresh).toBe(refreshesBefore);
  });

  it('answers not_found for an unknown user and invalid_input for a bad minValiditySeconds', async () => {
    await expect(h.store.getAccessToken('nobody-here')).rejects.toMatchObject({ code: 'not_found' });
    await expect(h.store.getAccessToken(users[0].sub, { minValiditySeconds: -1 })).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('100 concurrent readers on 5 store instances plus a due tick cause exactly one IAM refresh', async () => {
    const sub = users[1].sub;
    await exchangeUser(h, sub);
    const stores: TokenStore[] = [];
    const connections = [];
    for (let i = 0; i < 5; i += 1) {
      const redis = createFastFailConnection(h.config.redisUrl);
      connections.push(redis);
      await waitUntilReady(redis, 5000);
      const storeIam = new IamClient({ tokenUrl: iam.tokenUrl, ...iam.workerClient });
      stores.push(new TokenStore({ redis, prefix: h.prefix, keyRing: h.config.keyRing, iam: storeIam }));
    }
    const refreshQueue = new Queue(REFRESH_QUEUE, { connection: h.broker.context.workerConnection, prefix: h.prefix });
    try {
      // Wait until the access token has less than a second left (lifetime 3 s): every reader must refresh.
      const stored = await h.store.get(sub);
      await sleep(Math.max(0, stored!.status.accessExpiresAtMs - 900 - Date.now()));
      iam.faults.setLatencyMs(300); // widen the race window
      const refreshesBefore = iam.stats.refresh;
      const invalidBefore = iam.stats.errors.invalid_grant ?? 0;
      // Only this user is due now (the IAM counts refreshes globally): a tick enqueues its refresh job while the readers run.
      await h.redis.del(h.store.keys.due);
      await h.redis.zadd(h.store.keys.due, Date.now() - 1, sub);
      const tick = runTick({ redis: h.redis, keys: h.store.keys, refreshQueue });
      const tokens = await Promise.all(
        Array.from({ length: 100 }, (_, i) => stores[i % 5].getAccessToken(sub, { minValiditySeconds: 2 })),
      );
      expect((await tick).claimed).toBe(1);
      // Let the refresh job run too (it must find the set already refreshed).
      await eventually(async () => (await refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).waiting === 0
        && (await refreshQueue.getJobCounts('active')).active === 0, 10_000);
      await sleep(500);
      expect(iam.stats.refresh - refreshesBefore).toBe(1);
      expect((iam.stats.errors.invalid_grant ?? 0) - invalidBefore).toBe(0);
      expect(new Set(tokens).size).toBe(1);
      expect(jwtExpMs(tokens[0])).toBeGreaterThan(Date.now());
      const after = await h.store.status(sub);
      expect(after?.state).toBe('active');
      // The refreshed token set is still usable: one more forced refresh works (rotation kept the new token).
      await sleep(Math.max(0, after!.accessExpiresAtMs - 900 - Date.now()));
      await expect(h.store.getAccessToken(sub, { minValiditySeconds: 2 })).resolves.toMatch(/^eyJ/);
      expect(iam.stats.errors.invalid_grant ?? 0).toBe(invalidBefore);
    } finally {
      iam.faults.setLatencyMs(0);
      await refreshQueue.close();
      for (const c of connections) c.disconnect();
    }
  });

  it('never stores a token in plaintext and never logs one', async () => {
    const dump = await dumpPrefix(h.redis, h.prefix);
    expect(dump).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(h.logs.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
