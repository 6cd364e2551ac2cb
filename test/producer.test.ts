import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { TokenProducer } from '../src/producer/token-producer.js';
import { KeyRing, SUBJECT_TOKEN_AAD } from '../src/shared/crypto.js';
import { EXCHANGE_QUEUE } from '../src/shared/job-contract.js';
import { cleanupPrefix, dumpPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

const keyRing = KeyRing.parse(KeyRing.generateSpec('p'));
const prefix = uniquePrefix('producer');
const redis = testRedis();
let producer: TokenProducer;
let queue: Queue;

beforeAll(() => {
  producer = new TokenProducer({ redis: TEST_REDIS_URL, prefix, keyRing });
  queue = new Queue(EXCHANGE_QUEUE, { connection: { url: TEST_REDIS_URL }, prefix });
});
afterAll(async () => {
  await producer.close();
  await queue.close();
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});

async function jobCount(): Promise<number> {
  const counts = await queue.getJobCounts();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('TokenProducer.enqueueExchange', () => {
  it('enqueues an encrypted subject token with its deadline and the user id', async () => {
    const exp = epochSeconds(300);
    const token = fakeJwt({ sub: 'user-1', exp });
    const { jobId } = await producer.enqueueExchange({ subjectToken: token, userId: 'user-1' });
    const job = await queue.getJob(jobId);
    expect(job?.data).toMatchObject({ v: 1, userId: 'user-1', deadlineAt: exp * 1000 });
    expect(job?.data.subjectToken).toMatch(/^tkx1\./);
    expect(keyRing.openString(job!.data.subjectToken, SUBJECT_TOKEN_AAD)).toBe(token);
    expect(job?.opts.attempts).toBeGreaterThan(1);
    expect(await dumpPrefix(redis, prefix)).not.toContain(token.split('.')[1]);
  });

  it('accepts an opaque token and gives it the default deadline', async () => {
    const before = Date.now();
    const { jobId } = await producer.enqueueExchange({ subjectToken: 'opaque-Token_123~+/==' });
    const job = await queue.getJob(jobId);
    expect(job?.data.deadlineAt).toBeGreaterThanOrEqual(before + 300_000);
  });

  const huge = 'a'.repeat(16 * 1024 + 1);
  const badInputs: [string, unknown, string][] = [
    ['an empty token', { subjectToken: '' }, 'subject_token_missing'],
    ['a missing token', {}, 'subject_token_missing'],
    ['a null token', { subjectToken: null }, 'subject_token_missing'],
    ['a number', { subjectToken: 42 }, 'subject_token_malformed'],
    ['an object', { subjectToken: { a: 1 } }, 'subject_token_malformed'],
    ['a token over 16 KiB', { subjectToken: huge }, 'subject_token_too_large'],
    ['a token with spaces', { subjectToken: 'Bearer abc' }, 'subject_token_malformed'],
    ['unicode', { subjectToken: 'tökén' }, 'subject_token_malformed'],
    ['a garbage JWT', { subjectToken: 'eyJhbGciOi.garbage!.x' }, 'subject_token_malformed'],
    ['a JWT whose payload is not JSON', { subjectToken: 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln' }, 'subject_token_malformed'],
    ['a JWT with a string exp', { subjectToken: fakeJwt({ sub: 'x', exp: 'tomorrow' }) }, 'subject_token_malformed'],
    ['an expired JWT', { subjectToken: fakeJwt({ sub: 'x', exp: epochSeconds(-5) }) }, 'subject_token_expired'],
    ['an empty userId', { subjectToken: 'abc', userId: '' }, 'user_id_invalid'],
    ['a numeric userId', { subjectToken: 'abc', userId: 7 }, 'user_id_invalid'],
    ['a userId with a newline', { subjectToken: 'abc', userId: 'a\nb' }, 'user_id_invalid'],
    ['a userId over 256 characters', { subjectToken: 'abc', userId: 'u'.repeat(257) }, 'user_id_invalid'],
    ['a userId that is not the token\'s sub', { subjectToken: fakeJwt({ sub: 'alice', exp: epochSeconds(60) }), userId: 'mallory' }, 'user_mismatch'],
    ['no input at all', null, 'invalid_input'],
  ];

  it.each(badInputs)('rejects %s with its code and enqueues nothing', async (_name, input, code) => {
    const before = await jobCount();
    await expect(producer.enqueueExchange(input as never)).rejects.toMatchObject({ code });
    expect(await jobCount()).toBe(before);
  });

  // A hang would fail this test by its own timeout: the call must settle, with redis_unavailable.
  it('fails fast with redis_unavailable when Redis does not answer', { timeout: 10_000 }, async () => {
    const down = new TokenProducer({ redis: 'redis://127.0.0.1:1', prefix, keyRing, enqueueTimeoutMs: 500 });
    await expect(down.enqueueExchange({ subjectToken: 'abc' })).rejects.toMatchObject({ code: 'redis_unavailable' });
    await down.close();
  });
});
