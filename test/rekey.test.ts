import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { TokenProducer } from '../src/producer/token-producer.js';
import {
  ENVELOPE_STRING_PREFIX, envelopeKeyId, KeyRing, SUBJECT_TOKEN_AAD, tokenSetAad,
} from '../src/shared/crypto.js';
import { EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE, type ExchangeJobData } from '../src/shared/job-contract.js';
import { KeyLayout } from '../src/shared/keys.js';
import { rekey, REKEY_JOB_STATES } from '../src/shared/rekey.js';
import { scripts } from '../src/shared/scripts.js';
import { TokenStore } from '../src/shared/token-store.js';
import { cleanupPrefix, dumpPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

const specA = KeyRing.generateSpec('A');
const specB = KeyRing.generateSpec('B');
const ringA = KeyRing.parse(specA);
const ringB = KeyRing.parse(specB);
const ringBA = KeyRing.parse(`${specB},${specA}`);
const prefix = uniquePrefix('rekey');
const keys = new KeyLayout(prefix);
const redis = testRedis();

const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
const accessTokens = new Map(users.map((u) => [u, fakeJwt({ sub: u, exp: epochSeconds(300), n: 'access' })]));
const refreshTokens = new Map(users.map((u) => [u, fakeJwt({ sub: u, typ: 'Offline', n: 'refresh' })]));
const subjectTokens: string[] = [];
let queue: Queue<ExchangeJobData>;

async function jobIdsByState(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const state of REKEY_JOB_STATES) result[state] = await queue.getRanges([state], 0, -1, true);
  return result;
}

async function allJobTokens(): Promise<string[]> {
  const tokens: string[] = [];
  for (const ids of Object.values(await jobIdsByState())) {
    for (const id of ids) tokens.push(JSON.parse((await redis.hget(queue.toKey(id), 'data'))!).subjectToken);
  }
  return tokens;
}

const keyIdOfString = (envelope: string) => envelopeKeyId(Buffer.from(envelope.slice(ENVELOPE_STRING_PREFIX.length), 'base64url'));

beforeAll(async () => {
  const storeA = new TokenStore({ redis, prefix, keyRing: ringA });
  for (const userId of users) {
    await storeA.save({
      userId,
      tokens: { accessToken: accessTokens.get(userId)!, refreshToken: refreshTokens.get(userId)!, expiresInSeconds: 300, refreshExpiresInSeconds: 0, tokenType: 'Bearer' },
      issuedAtMs: Date.now(),
    });
  }
  // An ended user keeps metadata but no token set: nothing to rekey there.
  await storeA.end('u5', 'revoked', 'test');

  queue = new Queue<ExchangeJobData>(EXCHANGE_QUEUE, { connection: { url: TEST_REDIS_URL }, prefix });
  const producer = new TokenProducer({ redis: TEST_REDIS_URL, prefix, keyRing: ringA });
  const enqueue = async () => {
    const token = fakeJwt({ sub: `s${subjectTokens.length}`, exp: epochSeconds(600) });
    subjectTokens.push(token);
    return producer.enqueueExchange({ subjectToken: token });
  };
  // Two jobs that end up failed (kept for inspection, still holding their encrypted subject token).
  for (let i = 0; i < 2; i += 1) {
    const token = fakeJwt({ sub: `f${i}`, exp: epochSeconds(600) });
    subjectTokens.push(token);
    await queue.add('exchange', {
      v: 1, subjectToken: ringA.sealToString(token, SUBJECT_TOKEN_AAD), receivedAt: Date.now(),
    }, { ...EXCHANGE_JOB_OPTIONS, attempts: 1 });
  }
  const failing = new Worker(EXCHANGE_QUEUE, async () => {
    throw new Error('fail on purpose');
  }, { connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null }, prefix, autorun: false });
  let failedCount = 0;
  const failedBoth = new Promise<void>((resolve) => {
    failing.on('failed', () => {
      failedCount += 1;
      if (failedCount === 2) resolve();
    });
  });
  void failing.run();
  await failedBoth;
  await failing.close();
  // Three waiting jobs, one delayed one, one plaintext job (ALLOW_PLAINTEXT_JOBS producers).
  await enqueue();
  await enqueue();
  await enqueue();
  const delayedToken = fakeJwt({ sub: 'delayed', exp: epochSeconds(600) });
  subjectTokens.push(delayedToken);
  await queue.add('exchange', {
    v: 1, subjectToken: ringA.sealToString(delayedToken, SUBJECT_TOKEN_AAD), receivedAt: Date.now(),
  }, { ...EXCHANGE_JOB_OPTIONS, delay: 3_600_000 });
  await queue.add('exchange', { v: 1, subjectToken: 'plaintext-on-purpose', receivedAt: Date.now() }, EXCHANGE_JOB_OPTIONS);
  await producer.close();
});

afterAll(async () => {
  await queue.close();
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});

describe('rekey', () => {
  it('starts from token sets and jobs all under key A (the fixture is what the test claims)', async () => {
    for (const userId of users.slice(0, 4)) expect(envelopeKeyId((await redis.getBuffer(keys.tokens(userId)))!)).toBe('A');
    expect(await redis.exists(keys.tokens('u5'))).toBe(0);
    const byState = await jobIdsByState();
    expect(byState.failed).toHaveLength(2);
    expect(byState.waiting).toHaveLength(4);
    expect(byState.delayed).toHaveLength(1);
    const envelopes = (await allJobTokens()).filter((t) => t.startsWith(ENVELOPE_STRING_PREFIX));
    expect(envelopes).toHaveLength(6);
    expect(new Set(envelopes.map(keyIdOfString))).toEqual(new Set(['A']));
  });

  it('re-encrypts every token set and encrypted job with the primary key B', async () => {
    const progress: string[] = [];
    const report = await rekey({ redis, prefix, keyRing: ringBA, batchSize: 2, progressEvery: 1, onProgress: (p) => progress.push(p.phase) });
    expect(report.primaryKeyId).toBe('B');
    expect(report.tokenSets).toEqual({ scanned: 5, rekeyed: 4, skipped: 1, changedMeanwhile: 0, failed: 0 });
    expect(report.jobs).toEqual({ scanned: 7, rekeyed: 6, skipped: 1, changedMeanwhile: 0, failed: 0 });
    expect(progress).toContain('token-sets');
    expect(progress).toContain('jobs');

    for (const userId of users.slice(0, 4)) expect(envelopeKeyId((await redis.getBuffer(keys.tokens(userId)))!)).toBe('B');
    const tokens = await allJobTokens();
    expect(tokens).toContain('plaintext-on-purpose');
    const envelopes = tokens.filter((t) => t.startsWith(ENVELOPE_STRING_PREFIX));
    expect(new Set(envelopes.map(keyIdOfString))).toEqual(new Set(['B']));
  });

  it('leaves data a reader holding only key B can decrypt', async () => {
    const storeB = new TokenStore({ redis, prefix, keyRing: ringB });
    for (const userId of users.slice(0, 4)) {
      const set = await storeB.get(userId);
      expect(set?.accessToken).toBe(accessTokens.get(userId));
      expect(set?.refreshToken).toBe(refreshTokens.get(userId));
      expect(set?.status.state).toBe('active');
    }
    expect(await storeB.status('u5')).toMatchObject({ state: 'revoked' });
    const decrypted = (await allJobTokens())
      .filter((t) => t.startsWith(ENVELOPE_STRING_PREFIX))
      .map((t) => ringB.openString(t, SUBJECT_TOKEN_AAD));
    expect(new Set(decrypted)).toEqual(new Set(subjectTokens));
    const oneEnvelope = (await allJobTokens()).find((t) => t.startsWith(ENVELOPE_STRING_PREFIX))!;
    expect(() => ringA.openString(oneEnvelope, SUBJECT_TOKEN_AAD)).toThrow(/no configured key/);
  });

  it('keeps job metadata intact: state, options and the other data fields', async () => {
    const byState = await jobIdsByState();
    expect(byState.failed).toHaveLength(2);
    expect(byState.delayed).toHaveLength(1);
    const job = await queue.getJob(byState.waiting[0]);
    expect(job?.data).toMatchObject({ v: 1 });
    expect(typeof job?.data.receivedAt).toBe('number');
  });

  it('is idempotent: a second run finds nothing left to do', async () => {
    const report = await rekey({ redis, prefix, keyRing: ringBA });
    expect(report.tokenSets.rekeyed).toBe(0);
    expect(report.jobs.rekeyed).toBe(0);
    expect(report.tokenSets.skipped).toBe(5);
    expect(report.jobs.skipped).toBe(7);
  });

  it('never writes a token in plaintext to Redis', async () => {
    const dump = await dumpPrefix(redis, prefix);
    for (const token of [...accessTokens.values(), ...refreshTokens.values(), ...subjectTokens]) {
      expect(dump).not.toContain(token);
    }
  });

  it('counts and leaves alone an envelope under a key it does not have', async () => {
    const ringC = KeyRing.parse(KeyRing.generateSpec('C'));
    const foreign = ringC.seal(Buffer.from('x'), tokenSetAad('stranger'));
    await redis.hset(keys.meta('stranger'), 'state', 'active', 'version', '1');
    await redis.set(keys.tokens('stranger'), foreign);
    const report = await rekey({ redis, prefix, keyRing: ringBA, only: 'token-sets' });
    expect(report.tokenSets.failed).toBe(1);
    expect(report.jobs.scanned).toBe(0);
    expect((await redis.getBuffer(keys.tokens('stranger')))!.equals(foreign)).toBe(true);
    await redis.del(keys.tokens('stranger'), keys.meta('stranger'));
  });
});

describe('replace-if-equal-1.lua', () => {
  it('replaces a string only when it still holds the value read, keeping its TTL', async () => {
    const key = `${prefix}:cas`;
    await redis.set(key, Buffer.from([1, 2, 3]), 'EX', 600);
    expect(await scripts.replaceIfEqual.run(redis, [key], [Buffer.from([9, 9]), Buffer.from([4]), ''])).toBe(0);
    expect((await redis.getBuffer(key))!.equals(Buffer.from([1, 2, 3]))).toBe(true);
    expect(await scripts.replaceIfEqual.run(redis, [key], [Buffer.from([1, 2, 3]), Buffer.from([4]), ''])).toBe(1);
    expect((await redis.getBuffer(key))!.equals(Buffer.from([4]))).toBe(true);
    expect(await redis.ttl(key)).toBeGreaterThan(0);
  });

  it('replaces a hash field only when it still holds the value read, and never creates one', async () => {
    const key = `${prefix}:cas-hash`;
    await redis.hset(key, 'data', 'old');
    expect(await scripts.replaceIfEqual.run(redis, [key], ['other', 'new', 'data'])).toBe(0);
    expect(await redis.hget(key, 'data')).toBe('old');
    expect(await scripts.replaceIfEqual.run(redis, [key], ['old', 'new', 'data'])).toBe(1);
    expect(await redis.hget(key, 'data')).toBe('new');
    expect(await scripts.replaceIfEqual.run(redis, [`${prefix}:missing`], ['old', 'new', 'data'])).toBe(0);
    expect(await redis.exists(`${prefix}:missing`)).toBe(0);
  });

  it('loses to a writer that replaced the token set between read and write', async () => {
    const store = new TokenStore({ redis, prefix, keyRing: ringA });
    await store.save({
      userId: 'racer',
      tokens: { accessToken: fakeJwt({ n: 1 }), expiresInSeconds: 300, tokenType: 'Bearer' },
      issuedAtMs: Date.now(),
    });
    const read = (await redis.getBuffer(keys.tokens('racer')))!;
    const rekeyed = ringBA.seal(ringBA.open(read, tokenSetAad('racer')), tokenSetAad('racer'));
    // A worker stores a newer set meanwhile (with its own, older configuration).
    const newer = fakeJwt({ n: 2 });
    await store.save({ userId: 'racer', tokens: { accessToken: newer, expiresInSeconds: 300, tokenType: 'Bearer' }, issuedAtMs: Date.now() + 1 });
    expect(await scripts.replaceIfEqual.run(redis, [keys.tokens('racer')], [read, rekeyed, ''])).toBe(0);
    expect((await store.get('racer'))?.accessToken).toBe(newer);
  });
});
