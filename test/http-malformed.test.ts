import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeJwt, startApiHarness, type ApiHarness } from './helpers/http-api.js';

const future = Math.floor(Date.now() / 1000) + 3600;
const valid = fakeJwt({ sub: 'alice', exp: future });
const json = (v: unknown) => JSON.stringify(v);
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** [label, raw JSON body, expected error code]. Every one must be refused with a 4xx and enqueue nothing. */
const MALFORMED: [string, string, string][] = [
  ['empty object', '{}', 'subject_token_missing'],
  ['null token', json({ subjectToken: null }), 'subject_token_missing'],
  ['empty token', json({ subjectToken: '' }), 'subject_token_missing'],
  ['only userId', json({ userId: 'alice' }), 'subject_token_missing'],
  ['number token', json({ subjectToken: 123 }), 'subject_token_malformed'],
  ['float token', '{"subjectToken":1.5e308}', 'subject_token_malformed'],
  ['boolean token', json({ subjectToken: true }), 'subject_token_malformed'],
  ['empty array token', json({ subjectToken: [] }), 'subject_token_malformed'],
  ['array token', json({ subjectToken: [valid] }), 'subject_token_malformed'],
  ['object token', json({ subjectToken: {} }), 'subject_token_malformed'],
  ['nested object token', json({ subjectToken: { token: valid, deeper: { x: [1, 2, { y: null }] } } }), 'subject_token_malformed'],
  ['duplicate key, last an object', `{"subjectToken":"abc","subjectToken":{"x":1}}`, 'subject_token_malformed'],
  ['token with a space', json({ subjectToken: 'abc def' }), 'subject_token_malformed'],
  ['token with a newline', json({ subjectToken: 'abc\n' }), 'subject_token_malformed'],
  ['token with NUL', json({ subjectToken: 'abc\u0000' }), 'subject_token_malformed'],
  ['unicode token', json({ subjectToken: 'tökén' }), 'subject_token_malformed'],
  ['emoji token', json({ subjectToken: '🔑🔑🔑' }), 'subject_token_malformed'],
  ['RTL override token', json({ subjectToken: 'abc\u202Edef' }), 'subject_token_malformed'],
  ['lone surrogate token', '{"subjectToken":"\\ud800"}', 'subject_token_malformed'],
  ['HTML token', json({ subjectToken: '<script>alert(1)</script>' }), 'subject_token_malformed'],
  ['SQL token', json({ subjectToken: "' OR 1=1 --" }), 'subject_token_malformed'],
  ['token with quotes', json({ subjectToken: '"quoted"' }), 'subject_token_malformed'],
  ['JWT with bad segment chars', json({ subjectToken: 'ab+c.de/f.ghi' }), 'subject_token_malformed'],
  ['JWT that does not decode', json({ subjectToken: 'aaaa.bbbb.cccc' }), 'subject_token_malformed'],
  ['JWT with empty header', json({ subjectToken: `.${valid.split('.')[1]}.sig` }), 'subject_token_malformed'],
  ['JWT with string exp', json({ subjectToken: fakeJwt({ sub: 'a', exp: 'tomorrow' }) }), 'subject_token_malformed'],
  ['JWT with exp null', json({ subjectToken: fakeJwt({ sub: 'a', exp: null }) }), 'subject_token_malformed'],
  ['expired JWT', json({ subjectToken: fakeJwt({ sub: 'a', exp: 1 }) }), 'subject_token_expired'],
  ['JWT expiring now', json({ subjectToken: fakeJwt({ sub: 'a', exp: Math.floor(Date.now() / 1000) - 1 }) }), 'subject_token_expired'],
  ['token of 16 KiB + 1', json({ subjectToken: 'a'.repeat(16 * 1024 + 1) }), 'subject_token_too_large'],
  ['token of 30000 bytes', json({ subjectToken: 'a'.repeat(30_000) }), 'subject_token_too_large'],
  ['multibyte token over 16 KiB', json({ subjectToken: 'é'.repeat(9000) }), 'subject_token_too_large'],
  ['null userId', json({ subjectToken: valid, userId: null }), 'user_id_invalid'],
  ['number userId', json({ subjectToken: valid, userId: 42 }), 'user_id_invalid'],
  ['empty userId', json({ subjectToken: valid, userId: '' }), 'user_id_invalid'],
  ['userId of 257 chars', json({ subjectToken: 'opaque', userId: 'u'.repeat(257) }), 'user_id_invalid'],
  ['userId with a space', json({ subjectToken: 'opaque', userId: 'al ice' }), 'user_id_invalid'],
  ['userId with a tab', json({ subjectToken: 'opaque', userId: 'alice\t' }), 'user_id_invalid'],
  ['userId with BEL', json({ subjectToken: 'opaque', userId: 'a\u0007' }), 'user_id_invalid'],
  ['userId with U+2028', json({ subjectToken: 'opaque', userId: 'a\u2028b' }), 'user_id_invalid'],
  ['object userId', json({ subjectToken: valid, userId: { id: 'alice' } }), 'user_id_invalid'],
  ['array userId', json({ subjectToken: valid, userId: ['alice'] }), 'user_id_invalid'],
  ['boolean userId', json({ subjectToken: valid, userId: true }), 'user_id_invalid'],
  ['userId other than sub', json({ subjectToken: valid, userId: 'mallory' }), 'user_mismatch'],
  ['__proto__ key', '{"__proto__":{"subjectToken":"abc"}}', 'invalid_input'],
  ['__proto__ beside a token', `{"subjectToken":"${valid}","__proto__":{"isAdmin":true}}`, 'invalid_input'],
  ['nested __proto__', `{"subjectToken":"${valid}","x":{"__proto__":{"isAdmin":true}}}`, 'invalid_input'],
  ['constructor.prototype', '{"constructor":{"prototype":{"isAdmin":true}}}', 'invalid_input'],
  ['constructor beside a token', `{"subjectToken":"${valid}","constructor":{"prototype":{"isAdmin":true}}}`, 'invalid_input'],
  ['unknown field', json({ subjectToken: valid, extra: 1 }), 'invalid_input'],
  ['token under another name', json({ subject_token: valid }), 'invalid_input'],
  ['deeply nested extra field', json({ subjectToken: valid, a: { b: { c: { d: { e: [1, { f: null }] } } } } }), 'invalid_input'],
  ['a thousand fields', json(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]))), 'invalid_input'],
  ['top-level array', json([{ subjectToken: valid }]), 'invalid_input'],
  ['empty array', '[]', 'invalid_input'],
  ['top-level string', json(valid), 'invalid_input'],
  ['top-level number', '123', 'invalid_input'],
  ['top-level null', 'null', 'invalid_input'],
  ['top-level true', 'true', 'invalid_input'],
  ['empty body', '', 'invalid_input'],
  ['whitespace body', '   ', 'invalid_input'],
  ['truncated JSON', `{"subjectToken":"${valid}"`, 'invalid_input'],
  ['trailing comma', `{"subjectToken":"${valid}",}`, 'invalid_input'],
  ['single quotes', `{'subjectToken':'${valid}'}`, 'invalid_input'],
  ['trailing garbage', `{"subjectToken":"${valid}"}garbage`, 'invalid_input'],
  ['duplicate userId, last null', `{"subjectToken":"${valid}","userId":"alice","userId":null}`, 'user_id_invalid'],
  ['NaN', 'NaN', 'invalid_input'],
  ['comment in JSON', `{"subjectToken":"${valid}" /* hi */}`, 'invalid_input'],
  ['deeply nested arrays', nested(5000), 'invalid_input'],
  ['unterminated string', '{"subjectToken":"abc', 'invalid_input'],
  ['body above 32 KiB', json({ subjectToken: 'a'.repeat(33 * 1024) }), 'body_too_large'],
];

describe('POST /v1/exchanges refuses malformed bodies', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApiHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it(`has at least 50 cases (${MALFORMED.length})`, () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(50);
  });

  it('answers each with a 4xx { error, message } of the expected code and enqueues nothing', async () => {
    const before = await h.role.api.deps.exchangeQueue.getJobCounts();
    const mismatches: string[] = [];
    for (const [label, body, code] of MALFORMED) {
      const res = await h.call('/v1/exchanges', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      const answer = (await res.json()) as { error?: unknown; message?: unknown };
      const ok = res.status >= 400 && res.status < 500 && answer.error === code && typeof answer.message === 'string' && answer.message.length > 0;
      if (!ok) mismatches.push(`${label}: ${res.status} ${JSON.stringify(answer)} (expected ${code})`);
      // A message never repeats the body.
      if (typeof answer.message === 'string' && answer.message.includes(valid)) mismatches.push(`${label}: message echoes the token`);
    }
    expect(mismatches).toEqual([]);
    expect(await h.role.api.deps.exchangeQueue.getJobCounts()).toEqual(before);
    expect(Object.values(before).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('leaves the process healthy, unpolluted and still accepting a valid token', async () => {
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('subjectToken');
    expect((await h.call('/healthz', { auth: false })).status).toBe(200);
    expect((await h.call('/readyz', { auth: false })).status).toBe(200);
    const res = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: valid, userId: 'alice' } });
    expect(res.status).toBe(202);
    expect(await h.exchangeJobCount()).toBe(1);
    const rejected = await (await h.call('/metrics', { auth: false })).text();
    expect(rejected).toMatch(/tokex_http_exchange_requests_total\{outcome="rejected",code="subject_token_malformed"\} [1-9]/);
  });
});
