import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { dumpPrefix } from './helpers/redis.js';
import { eventually } from './helpers/logs.js';
import { events, exchangeUser, makeUsers, sleep } from './refresh-support.js';

const users = makeUsers(2, 'reauth');

describe('a refresh token the IAM rejects', () => {
  let iam: DevIam;
  let h: Harness;
  let hooks: Server;
  const received: Record<string, unknown>[] = [];
  let failHooks = 1;

  beforeAll(async () => {
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        // The first delivery fails: the webhook must retry.
        if (failHooks > 0) {
          failHooks -= 1;
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    const webhookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/reauth`;
    iam = await startDevIam({ users, accessTokenTtlSeconds: 3, rotateRefreshTokens: true });
    h = await startHarness({
      iam,
      roles: ['worker', 'refresh', 'scheduler'],
      env: { REFRESH_TICK_MS: '200', REFRESH_SKEW_SECONDS: '1', REAUTH_WEBHOOK_URL: webhookUrl },
    });
  });
  afterAll(async () => {
    await h?.close();
    await iam?.close();
    await new Promise((resolve) => hooks?.close(resolve));
  });

  it('marks the user reauth_required when the IAM says the offline session ended, emits the event and stops refreshing', async () => {
    const sub = users[0].sub;
    await exchangeUser(h, sub);
    expect((await h.store.status(sub))?.offline).toBe(true);
    await iam.endUserSessions(sub);
    const invalidBefore = iam.stats.errors.invalid_grant ?? 0;
    // The access token lives 3 s: the scheduler refreshes the user within ~2 s.
    const status = (await eventually(async () => {
      const s = await h.store.status(sub);
      return s?.state === 'reauth_required' ? s : null;
    }, 15_000))!;
    expect(status.reason).toMatch(/invalid_grant/);
    expect(status.dueAtMs).toBeNull();
    expect(status.refreshable).toBe(false);
    expect(await h.redis.exists(h.store.keys.tokens(sub))).toBe(0); // the dead refresh token is gone
    expect(status.username).toBe(users[0].username); // metadata kept for operators and readers
    const evt = (await events(h)).filter((e) => e.user === sub);
    expect(evt.map((e) => e.state)).toEqual(['stored', 'reauth_required']);
    expect(evt[1].reason).toBe(status.reason);
    expect(Number(evt[1].at)).toBeGreaterThan(0);
    expect(iam.stats.errors.invalid_grant ?? 0).toBe(invalidBefore + 1);

    // No further attempts: many ticks later the IAM saw no other refresh for this user.
    const refreshes = iam.stats.refresh;
    await sleep(1500);
    expect(iam.stats.refresh).toBe(refreshes);
    expect(await h.redis.zscore(h.store.keys.due, sub)).toBeNull();

    // Readers get a typed answer that says why.
    await expect(h.store.getAccessToken(sub)).rejects.toMatchObject({ code: 'reauth_required', message: expect.stringMatching(/invalid_grant/) });
  });

  it('calls the reauth webhook (retrying a failed delivery) with the reason and no token', async () => {
    const sub = users[0].sub;
    const payload = await eventually(() => received.find((p) => p.userId === sub), 15_000);
    expect(payload).toMatchObject({ type: 'reauth_required', userId: sub, reason: expect.stringMatching(/invalid_grant/) });
    expect(failHooks).toBe(0);
    expect(JSON.stringify(payload)).not.toMatch(/eyJ/);
  });

  it('clears the state when a later exchange for the user succeeds', async () => {
    const sub = users[0].sub;
    await exchangeUser(h, sub);
    const status = await h.store.status(sub);
    expect(status).toMatchObject({ state: 'active', refreshable: true });
    expect(status?.reason).toBeUndefined();
    expect(status?.dueAtMs).not.toBeNull();
    await expect(h.store.getAccessToken(sub)).resolves.toMatch(/^eyJ/);
  });

  it('a reader refreshing on demand also marks reauth_required when the IAM rejects the refresh token', async () => {
    const sub = users[1].sub;
    await exchangeUser(h, sub);
    await h.redis.zrem(h.store.keys.due, sub); // keep the scheduler out: the reader must meet the IAM's answer
    await iam.endUserSessions(sub);
    const stored = await h.store.status(sub);
    await sleep(Math.max(0, stored!.accessExpiresAtMs - 900 - Date.now()));
    // Less than a second left: the reader refreshes on demand.
    await expect(h.store.getAccessToken(sub, { minValiditySeconds: 2 })).rejects.toMatchObject({ code: 'reauth_required' });
    expect((await h.store.status(sub))?.state).toBe('reauth_required');
    expect((await events(h)).some((e) => e.user === sub && e.state === 'reauth_required')).toBe(true);
  });

  it('keeps tokens out of Redis values and logs', async () => {
    expect(await dumpPrefix(h.redis, h.prefix)).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(h.logs.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    // The logger scrubs token-shaped text: no line may even have needed it.
    expect(h.logs.text()).not.toContain('[REDACTED]');
  });
});
