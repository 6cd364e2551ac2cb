import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { events, exchangeUser, jwtExpMs, makeUsers, sleep } from './refresh-support.js';

const users = makeUsers(1, 'lazy');

describe('REFRESH_ACCESS_TOKENS=lazy', () => {
  let iam: DevIam;
  let h: Harness;

  beforeAll(async () => {
    iam = await startDevIam({ users, accessTokenTtlSeconds: 2, offlineSessionIdleSeconds: 6, rotateRefreshTokens: true });
    h = await startHarness({
      iam,
      roles: ['worker', 'refresh', 'scheduler'],
      env: { REFRESH_ACCESS_TOKENS: 'lazy', OFFLINE_KEEPALIVE_SECONDS: '3', REFRESH_TICK_MS: '200', REFRESH_SKEW_SECONDS: '0' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await iam?.close();
  });

  it('only keeps the offline session alive, and readers refresh the access token on demand', async () => {
    const sub = users[0].sub;
    await exchangeUser(h, sub);
    const stored = await h.store.status(sub);
    // Due at the keep-alive (3 s), not at the access expiry (2 s).
    expect(stored!.scheduledDueAtMs! - stored!.refreshedAtMs).toBe(3000);
    const before = iam.stats.refresh;
    await sleep(13_000); // more than two offline idle windows (6 s)
    const scheduled = iam.stats.refresh - before;
    // One keep-alive per ~3 s: about 4 in 13 s, far fewer than eager refreshes of a 2 s token would make.
    expect(scheduled).toBeGreaterThanOrEqual(3);
    expect(scheduled).toBeLessThanOrEqual(5);
    expect((await h.store.status(sub))?.state).toBe('active');
    // The stored access token has probably expired by now; a reader gets a valid one anyway.
    const token = await h.store.getAccessToken(sub, { minValiditySeconds: 1 });
    expect(jwtExpMs(token)).toBeGreaterThan(Date.now());
    expect((await events(h)).filter((e) => e.user === sub && e.state === 'refreshed').length).toBeGreaterThanOrEqual(scheduled);
    expect(iam.stats.errors.invalid_grant ?? 0).toBe(0);
  }, 30_000);
});
