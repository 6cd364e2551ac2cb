import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_USERS, startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { SUBJECT_TOKEN_AAD } from '../src/shared/crypto.js';
import { IamClient } from '../src/shared/iam-client.js';
import { TokenStore } from '../src/shared/token-store.js';
import { startHarness, type Harness } from './helpers/harness.js';

// The guards that keep a rotated refresh token from ever being used twice, and logouts from being undone.
const [ALICE, BOB] = DEFAULT_USERS;
let iam: DevIam;
let h: Harness;

beforeAll(async () => {
  iam = await startDevIam({ rotateRefreshTokens: true });
  h = await startHarness({ iam });
});
afterAll(async () => {
  await h?.close();
  await iam?.close();
});

async function exchange(sub: string): Promise<void> {
  const { jobId } = await h.producer.enqueueExchange({ subjectToken: await iam.issueUserToken({ sub }), userId: sub });
  expect((await h.waitForJob(jobId)).state).toBe('completed');
}

/** Makes the stored set due now, as the scheduler would find it. */
async function makeDue(sub: string): Promise<void> {
  await h.redis.hset(`${h.prefix}:meta:${sub}`, 'dueAtMs', '1');
}

describe('rotation safety', () => {
  it('stores a refresh even when the stored set claims a later issue time (a clock ahead elsewhere): one IAM call', async () => {
    await exchange(ALICE.sub);
    await h.redis.hset(`${h.prefix}:meta:${ALICE.sub}`, 'issuedAtMs', String(Date.now() + 60_000));
    await makeDue(ALICE.sub);
    const before = (await h.store.status(ALICE.sub))!.version;
    const calls = iam.stats.refresh;
    const result = await h.store.refresher!.ensure(ALICE.sub, { kind: 'due' });
    expect(result.outcome).toBe('refreshed');
    expect(iam.stats.refresh - calls).toBe(1);
    expect((await h.store.status(ALICE.sub))!.version).toBe(before + 1);
    expect(iam.stats.errors.invalid_grant ?? 0).toBe(0);
  });

  it('does not call the IAM while another process\'s refresh of the same set is in flight, until that mark is stale', async () => {
    await exchange(BOB.sub);
    await makeDue(BOB.sub);
    const meta = `${h.prefix}:meta:${BOB.sub}`;
    await h.redis.hset(meta, 'refreshingBy', 'another-process', 'refreshingAtMs', String(Date.now()));
    const calls = iam.stats.refresh;
    await expect(h.store.refresher!.ensure(BOB.sub, { kind: 'due' })).rejects.toMatchObject({ code: 'refresh_in_flight' });
    await expect(h.store.getAccessToken(BOB.sub, { minValiditySeconds: 100_000 })).resolves.toBeTruthy(); // still valid: no refresh needed
    expect(iam.stats.refresh).toBe(calls);
    // A mark older than any holder can still be writing is ignored.
    await h.redis.hset(meta, 'refreshingAtMs', String(Date.now() - 60 * 60_000));
    await expect(h.store.refresher!.ensure(BOB.sub, { kind: 'due' })).resolves.toMatchObject({ outcome: 'refreshed' });
    expect(iam.stats.refresh - calls).toBe(1);
    expect(await h.redis.hget(meta, 'refreshingBy')).toBeNull();
  });

  it('after an IAM timeout (the token may be used up) never sends the same refresh token again; an HTTP error clears the fence', async () => {
    const sub = ALICE.sub;
    await exchange(sub);
    const slowIam = new IamClient({ tokenUrl: iam.tokenUrl, ...iam.workerClient, timeoutMs: 200 });
    const store = new TokenStore({ redis: h.redis, prefix: h.prefix, keyRing: h.config.keyRing, iam: slowIam });
    // An HTTP answer (503) means the IAM did not use the token: the next try may use it.
    iam.faults.failNext(1, 503);
    await makeDue(sub);
    await expect(store.refresher!.ensure(sub, { kind: 'due' })).rejects.toMatchObject({ code: 'iam_unavailable' });
    expect(await h.redis.hget(`${h.prefix}:meta:${sub}`, 'refreshingBy')).toBeNull();
    // A 502 may come from a gateway after the IAM rotated: the fence stays.
    iam.faults.failNext(1, 502);
    await expect(store.refresher!.ensure(sub, { kind: 'due' })).rejects.toMatchObject({ code: 'iam_unavailable' });
    expect(await h.redis.hget(`${h.prefix}:meta:${sub}`, 'refreshingBy')).not.toBeNull();
    await h.redis.hdel(`${h.prefix}:meta:${sub}`, 'refreshingBy', 'refreshingAtMs'); // as if it went stale
    // A timeout leaves the fence too.
    iam.faults.setLatencyMs(600);
    const calls = iam.stats.refresh;
    try {
      await expect(store.refresher!.ensure(sub, { kind: 'due' })).rejects.toMatchObject({ code: 'iam_unavailable' });
      expect(await h.redis.hget(`${h.prefix}:meta:${sub}`, 'refreshingBy')).not.toBeNull();
      // refresh_in_flight is decided before any IAM call: the fenced token is not sent again.
      await expect(store.refresher!.ensure(sub, { kind: 'due' })).rejects.toMatchObject({ code: 'refresh_in_flight' });
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(iam.stats.refresh - calls).toBeLessThanOrEqual(1);
    } finally {
      iam.faults.setLatencyMs(0);
    }
  });
});

describe('schedule and logout', () => {
  it('keeps a user with live tokens in the due index when a finished refresh job tries to unschedule it', async () => {
    await exchange(BOB.sub);
    expect(await h.store.unscheduleIfIdle(BOB.sub)).toBe(false);
    expect(await h.redis.zscore(h.store.keys.due, BOB.sub)).not.toBeNull();
    await h.store.end(BOB.sub, 'reauth_required', 'invalid_grant');
    await h.redis.zadd(h.store.keys.due, Date.now(), BOB.sub);
    expect(await h.store.unscheduleIfIdle(BOB.sub)).toBe(true);
  });

  it('does not let an exchange of a token received before a revocation bring the user back', async () => {
    const token = await iam.issueUserToken({ sub: ALICE.sub });
    await exchange(ALICE.sub);
    const receivedBeforeRevoke = Date.now() - 1000;
    await h.store.end(ALICE.sub, 'revoked', 'revoked_by_api');
    const { Queue } = await import('bullmq');
    const queue = new Queue('exchange', { connection: { url: h.config.redisUrl }, prefix: h.prefix });
    const job = await queue.add('exchange', {
      v: 1, subjectToken: h.config.keyRing.sealToString(token, SUBJECT_TOKEN_AAD), userId: ALICE.sub, receivedAt: receivedBeforeRevoke,
    }, { attempts: 1 });
    await queue.close();
    const outcome = await h.waitForJob(job.id!);
    expect(outcome, JSON.stringify(outcome)).toMatchObject({ state: 'failed' });
    expect(outcome.failedReason).toMatch(/^revoked_meanwhile:/);
    expect((await h.store.status(ALICE.sub))!.state).toBe('revoked');
    // A login after the revocation is welcome.
    await exchange(ALICE.sub);
    expect((await h.store.status(ALICE.sub))!.state).toBe('active');
  });
});
