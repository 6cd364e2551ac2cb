import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { IamClient } from '../src/shared/iam-client.js';
import { createFastFailConnection, waitUntilReady } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { exchangeUser, jwtExpMs, makeUsers, sleep } from './refresh-support.js';

const USERS = 4;
const ACCESS_TTL_SECONDS = 3;
const OFFLINE_IDLE_SECONDS = 10;
const SOAK_MS = 62_000;
const users = makeUsers(USERS, 'soak');

describe('soak: short-lived tokens kept alive for a minute', () => {
  let iam: DevIam;
  let h: Harness;

  beforeAll(async () => {
    iam = await startDevIam({
      users, accessTokenTtlSeconds: ACCESS_TTL_SECONDS, offlineSessionIdleSeconds: OFFLINE_IDLE_SECONDS, rotateRefreshTokens: true,
    });
    h = await startHarness({
      iam,
      roles: ['worker', 'refresh', 'scheduler'],
      env: { REFRESH_TICK_MS: '250', REFRESH_SKEW_SECONDS: '1', OFFLINE_KEEPALIVE_SECONDS: '5', LOG_LEVEL: 'info' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await iam?.close();
  });

  it('a reader every 250 ms never gets an expired token, sessions outlive many idle windows, refreshes stay bounded', async () => {
    for (const u of users) await exchangeUser(h, u.sub);
    // The reader is another process's view: its own connection, store and IAM client.
    const redis = createFastFailConnection(h.config.redisUrl);
    await waitUntilReady(redis, 5000);
    const reader = new TokenStore({
      redis, prefix: h.prefix, keyRing: h.config.keyRing, iam: new IamClient({ tokenUrl: iam.tokenUrl, ...iam.workerClient }),
    });
    const refreshesBefore = iam.stats.refresh;
    const startedMs = Date.now();
    let reads = 0;
    const expired: number[] = [];
    const failures: string[] = [];
    try {
      while (Date.now() - startedMs < SOAK_MS) {
        const round = Date.now();
        await Promise.all(users.map(async (u) => {
          try {
            const token = await reader.getAccessToken(u.sub, { minValiditySeconds: 1 });
            reads += 1;
            const leftMs = jwtExpMs(token) - Date.now();
            if (leftMs <= 0) expired.push(leftMs);
          } catch (err) {
            failures.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
          }
        }));
        await sleep(Math.max(0, 250 - (Date.now() - round)));
      }
    } finally {
      redis.disconnect();
    }
    const elapsedS = (Date.now() - startedMs) / 1000;
    const refreshes = iam.stats.refresh - refreshesBefore;
    // The schedule never refreshes a set before half its lifetime, and a token's lifetime is at least
    // 2 s here (3 s, minus up to 1 s of JWT `exp` rounding): at most one refresh per second per user.
    // A storm (a refresh per tick or per read) would be 4+ per second per user.
    const bound = USERS * (elapsedS / ((ACCESS_TTL_SECONDS - 1) / 2) + 2);
    console.log(`soak: ${elapsedS.toFixed(1)} s, ${reads} reads, ${refreshes} IAM refreshes (bound ${Math.round(bound)}), ${failures.length} failures`);
    expect(failures).toEqual([]);
    expect(expired).toEqual([]);
    expect(reads).toBeGreaterThan(USERS * 200);
    expect(refreshes).toBeLessThanOrEqual(bound);
    // Each user was refreshed often enough to survive: well over the elapsed / lifetime.
    expect(refreshes).toBeGreaterThanOrEqual(USERS * Math.floor(elapsedS / ACCESS_TTL_SECONDS));
    expect(elapsedS).toBeGreaterThan(OFFLINE_IDLE_SECONDS * 6);
    expect(iam.stats.errors.invalid_grant ?? 0).toBe(0);
    for (const u of users) {
      const status = await h.store.status(u.sub);
      expect(status).toMatchObject({ state: 'active', offline: true, refreshable: true });
    }
    expect(h.logs.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  }, 120_000);
});
