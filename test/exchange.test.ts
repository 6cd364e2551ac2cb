import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { DEFAULT_USERS, startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { SUBJECT_TOKEN_AAD } from '../src/shared/crypto.js';
import { EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE } from '../src/shared/job-contract.js';
import { readJwtClaims } from '../src/shared/subject-token.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { eventually } from './helpers/logs.js';
import { dumpPrefix } from './helpers/redis.js';

const [ALICE, BOB] = DEFAULT_USERS;

let iam: DevIam;
/** Every token this suite saw, to prove none of them is stored or logged in plaintext. */
const seenTokens = new Set<string>();
const harnesses: Harness[] = [];

beforeAll(async () => {
  iam = await startDevIam();
});
afterEach(() => {
  iam.configure({ mode: 'v1', v2RefreshSameSession: true });
  iam.faults.reset();
});
afterAll(async () => {
  for (const h of harnesses) await h.close();
  await iam.close();
});

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ iam, env });
  harnesses.push(h);
  return h;
}

async function userToken(user = ALICE, expiresInSeconds?: number): Promise<string> {
  const token = await iam.issueUserToken({ sub: user.sub, expiresInSeconds });
  seenTokens.add(token);
  return token;
}

/** Reads the stored set and remembers its tokens for the plaintext scans. */
async function stored(h: Harness, userId: string) {
  const set = await h.store.get(userId);
  if (set) {
    seenTokens.add(set.accessToken);
    if (set.refreshToken) seenTokens.add(set.refreshToken);
  }
  return set;
}

/** A job added the way a foreign BullMQ client would, bypassing TokenProducer's checks. */
async function addRawJob(h: Harness, data: Record<string, unknown>): Promise<string> {
  const queue = new Queue(EXCHANGE_QUEUE, { connection: { url: h.config.redisUrl }, prefix: h.prefix });
  const job = await queue.add('exchange', data, EXCHANGE_JOB_OPTIONS);
  await queue.close();
  return job.id!;
}

describe('exchange, V1 (legacy token exchange)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });

  it('stores an offline token set for the IAM subject, encrypted, indexed and announced', async () => {
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(), userId: ALICE.sub });
    const outcome = await h.waitForJob(jobId);
    expect(outcome).toMatchObject({ state: 'completed' });
    const set = await stored(h, ALICE.sub);
    expect(readJwtClaims(set!.accessToken)?.sub).toBe(ALICE.sub);
    expect(set!.refreshToken).toBeTruthy();
    expect(set!.status).toMatchObject({ state: 'active', offline: true, refreshable: true, refreshExpiresAtMs: null, username: ALICE.username, version: 1 });
    expect(set!.status.scope).toContain('offline_access');
    expect(set!.status.dueAtMs).toBeGreaterThan(Date.now());
    expect((await h.store.getByUsername(ALICE.username))?.status.userId).toBe(ALICE.sub);
    const events = await h.redis.xrange(`${h.prefix}:events`, '-', '+');
    expect(events.map(([, fields]) => fields)).toContainEqual(['user', ALICE.sub, 'state', 'stored', 'reason', '', 'at', expect.any(String)]);
    expect(await iam.stats.exchange).toBeGreaterThan(0);
  });

  it('uses the IAM subject as the key when the producer gave no userId', async () => {
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(BOB) });
    expect(await h.waitForJob(jobId)).toMatchObject({ state: 'completed', returnvalue: expect.objectContaining({ userId: BOB.sub }) });
    expect((await stored(h, BOB.sub))?.status.state).toBe('active');
  });

  it('fails with user_mismatch and stores nothing when the job names another user', async () => {
    const other = await harness();
    const token = await userToken(ALICE);
    const jobId = await addRawJob(other, {
      v: 1, subjectToken: other.config.keyRing.sealToString(token, SUBJECT_TOKEN_AAD), userId: BOB.sub, receivedAt: Date.now(),
    });
    const outcome = await other.waitForJob(jobId);
    expect(outcome.state).toBe('failed');
    expect(outcome.failedReason).toMatch(/^user_mismatch:/);
    expect(await other.store.status(ALICE.sub)).toBeNull();
    expect(await other.store.status(BOB.sub)).toBeNull();
  });

  it('fails a job picked up after its deadline with subject_token_expired, without calling the IAM', async () => {
    const before = iam.stats.exchange;
    const token = await userToken();
    const jobId = await addRawJob(h, {
      v: 1, subjectToken: h.config.keyRing.sealToString(token, SUBJECT_TOKEN_AAD), receivedAt: Date.now() - 60_000, deadlineAt: Date.now() - 1000,
    });
    const outcome = await h.waitForJob(jobId);
    expect(outcome.failedReason).toMatch(/^subject_token_expired:/);
    expect(iam.stats.exchange).toBe(before);
  });

  it('rejects an expired IAM token at the producer and enqueues nothing', async () => {
    const token = await userToken(ALICE, 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expect(h.producer.enqueueExchange({ subjectToken: token })).rejects.toMatchObject({ code: 'subject_token_expired' });
  });

  it('fails a subject token the IAM rejects with subject_token_invalid', async () => {
    const forged = `${(await userToken()).split('.').slice(0, 2).join('.')}.${'A'.repeat(342)}`;
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: forged });
    seenTokens.add(forged);
    expect((await h.waitForJob(jobId)).failedReason).toMatch(/^subject_token_invalid:/);
  });

  it('retries through two IAM 503s and then stores the tokens', async () => {
    const before = iam.stats.exchange;
    iam.faults.failNext(2, 503);
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(BOB), userId: BOB.sub });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    expect(iam.stats.exchange - before).toBe(3);
  });

  it('waits out a 429 for the Retry-After time, then succeeds', async () => {
    const before = iam.stats.exchange;
    iam.faults.rateLimitNext(1, '1');
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(ALICE), userId: ALICE.sub });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    expect(iam.stats.exchange - before).toBe(2);
    // The whole queue was paused for the IAM's Retry-After (1 s), and the wait was not counted as a failed attempt.
    const paused = h.logs.lines.find((l) => l.includes('pausing the exchange queue'));
    expect(JSON.parse(paused!)).toMatchObject({ waitMs: 1000 });
    const queue = new Queue(EXCHANGE_QUEUE, { connection: { url: h.config.redisUrl }, prefix: h.prefix });
    expect((await queue.getJob(jobId))?.attemptsMade).toBe(1);
    await queue.close();
  });

  it('refuses a plaintext job by default and removes the token from the job data', async () => {
    const token = await userToken();
    const jobId = await addRawJob(h, { v: 1, subjectToken: token, receivedAt: Date.now() });
    expect((await h.waitForJob(jobId)).failedReason).toMatch(/^plaintext_job_refused:/);
    const queue = new Queue(EXCHANGE_QUEUE, { connection: { url: h.config.redisUrl }, prefix: h.prefix });
    expect((await queue.getJob(jobId))?.data.subjectToken).toBe('[removed]');
    await queue.close();
  });

  it('fails malformed job data with job_data_invalid and scrubs whatever could be a token from it', async () => {
    const jobId = await addRawJob(h, { v: 2, token: 'opaque-secret-1' });
    expect((await h.waitForJob(jobId)).failedReason).toMatch(/^job_data_invalid:/);
    const extra = await addRawJob(h, {
      v: 1, subjectToken: h.config.keyRing.sealToString(await userToken(), SUBJECT_TOKEN_AAD), receivedAt: Date.now(), access_token: 'opaque-secret-2',
    });
    expect((await h.waitForJob(extra)).failedReason).toMatch(/^job_data_invalid:/);
    const dump = await dumpPrefix(h.redis, h.prefix);
    expect(dump).not.toContain('opaque-secret-1');
    expect(dump).not.toContain('opaque-secret-2');
  });
});

describe('exchange, other IAM behaviours', () => {
  it('stores an online refresh token when no offline scope is asked for', async () => {
    const h = await harness({ IAM_SCOPE: '' });
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(BOB) });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    const set = await stored(h, BOB.sub);
    expect(set!.status).toMatchObject({ offline: false, refreshable: true });
    expect(set!.status.refreshExpiresAtMs).toBeGreaterThan(Date.now());
  });

  it('works with V2 standard token exchange and client_secret_basic', async () => {
    iam.configure({ mode: 'v2' });
    const h = await harness({ IAM_SCOPE: '', IAM_CLIENT_AUTH: 'client_secret_basic' });
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(ALICE), userId: ALICE.sub });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    expect((await stored(h, ALICE.sub))!.status).toMatchObject({ offline: false, refreshable: true });
  });

  it('stores the access token alone, not refreshable, when the IAM returns no refresh token', async () => {
    iam.configure({ mode: 'v2', v2RefreshSameSession: false });
    const h = await harness({ IAM_SCOPE: '' });
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(ALICE) });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    const set = await stored(h, ALICE.sub);
    expect(set!.refreshToken).toBeUndefined();
    expect(set!.status).toMatchObject({ refreshable: false, dueAtMs: null });
  });

  it('treats V2 refusing offline_access as a configuration error', async () => {
    iam.configure({ mode: 'v2' });
    const h = await harness();
    const { jobId } = await h.producer.enqueueExchange({ subjectToken: await userToken(ALICE) });
    expect((await h.waitForJob(jobId)).failedReason).toMatch(/^client_misconfigured:/);
  });

  it('fails invalid client credentials at once and logs the alert once per burst', async () => {
    const h = await harness({ IAM_CLIENT_SECRET: 'wrong-secret' });
    const ids = await Promise.all([ALICE, BOB, ALICE].map(async (u) => (await h.producer.enqueueExchange({ subjectToken: await userToken(u) })).jobId));
    for (const id of ids) expect((await h.waitForJob(id)).failedReason).toMatch(/^client_misconfigured: IAM refused our client with 401/);
    const alerts = h.logs.lines.filter((l) => l.includes('IAM client misconfigured') && l.includes('"level":50'));
    expect(alerts).toHaveLength(1);
  });

  it('accepts a plaintext job when ALLOW_PLAINTEXT_JOBS=true and encrypts it in place first', async () => {
    const h = await harness({ ALLOW_PLAINTEXT_JOBS: 'true' });
    const token = await userToken(BOB);
    const jobId = await addRawJob(h, { v: 1, subjectToken: token, receivedAt: Date.now() });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    expect(await dumpPrefix(h.redis, h.prefix)).not.toContain(token);
  });

  it('loses no job when shutdown cancels an exchange in flight: another worker finishes it', async () => {
    iam.faults.setLatencyMs(1500);
    const first = await harness({ SHUTDOWN_TIMEOUT_MS: '100' });
    const { jobId } = await first.producer.enqueueExchange({ subjectToken: await userToken(BOB), userId: BOB.sub });
    await eventually(async () => (await first.broker.context.workerConnection.llen(`${first.prefix}:exchange:active`)) > 0);
    await first.broker.close();
    expect(first.logs.text()).toContain('active jobs did not finish in time; cancelling them');
    iam.faults.setLatencyMs(0);
    const second = await startHarness({ iam, prefix: first.prefix, env: { TOKEN_ENCRYPTION_KEYS: `test:${first.config.keyRing.primary.key.toString('base64')}` } });
    harnesses.push(second);
    await eventually(async () => (await second.store.status(BOB.sub))?.state === 'active', 20_000);
    const queue = new Queue(EXCHANGE_QUEUE, { connection: { url: second.config.redisUrl }, prefix: second.prefix });
    await eventually(async () => (await queue.getJobState(jobId)) === 'completed');
    await queue.close();
  });
});

describe('no token in plaintext', () => {
  it('leaves no token readable anywhere under the prefixes of this suite, or in any log line', async () => {
    expect(seenTokens.size).toBeGreaterThan(10);
    for (const h of harnesses) {
      const dump = await dumpPrefix(h.redis, h.prefix);
      const text = h.logs.text();
      expect(text.length).toBeGreaterThan(0);
      // The logger scrubs token-shaped text, so a scan for tokens alone could not fail: no line may
      // even have needed a redaction (something tried to log a secret).
      expect(text).not.toContain('[REDACTED]');
      for (const token of seenTokens) {
        const signature = token.split('.').at(-1)!;
        expect(dump.includes(token) || dump.includes(signature)).toBe(false);
        expect(text.includes(token) || (signature.length > 20 && text.includes(signature))).toBe(false);
      }
    }
  });
});
