import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { DEFAULT_USERS } from '../src/dev-iam/index.js';
import { EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE } from '../src/shared/job-contract.js';
import { tokenSetAad } from '../src/shared/crypto.js';
import { JSON_DICTIONARY, TOKEN_SET_FORMAT } from '../src/shared/token-set-codec.js';
import { startHarness, type Harness } from './helpers/harness.js';

// The README documents the job and storage formats for services in other languages, with Python
// examples. This suite runs those examples (test/fixtures/tokex_format.py) against the real broker.
const script = new URL('./fixtures/tokex_format.py', import.meta.url).pathname;
const python = spawnSync('python3', ['-c', 'import cryptography'], { encoding: 'utf8' });
const hasPython = python.status === 0;

const b64 = (text: string) => Buffer.from(text, 'latin1').toString('base64url');

function py(args: string[], input: string, keys: string): string {
  const out = spawnSync('python3', [script, ...args], { input, encoding: 'utf8', env: { ...process.env, TOKEN_ENCRYPTION_KEYS: keys } });
  if (out.status !== 0) throw new Error(out.stderr);
  return out.stdout.trim();
}

describe.skipIf(!hasPython)('documented formats, used from Python (skipped without python3 + cryptography)', () => {
  let h: Harness;
  let keys: string;
  beforeAll(async () => {
    h = await startHarness();
    keys = `${h.config.keyRing.primary.id}:${h.config.keyRing.primary.key.toString('base64')}`;
  });
  afterAll(async () => h.close());

  it('accepts a job enqueued by a foreign BullMQ client with a subject token sealed as documented', async () => {
    const [alice] = DEFAULT_USERS;
    const token = await h.iam.issueUserToken({ sub: alice.sub });
    const sealed = py(['seal-subject'], token, keys);
    expect(sealed).toMatch(/^tkx1\./);
    const queue = new Queue(EXCHANGE_QUEUE, { connection: { url: h.config.redisUrl }, prefix: h.prefix });
    const job = await queue.add('exchange', { v: 1, subjectToken: sealed, userId: alice.sub, receivedAt: Date.now() }, EXCHANGE_JOB_OPTIONS);
    await queue.close();
    expect((await h.waitForJob(job.id!)).state).toBe('completed');
  });

  it('lets a consumer decrypt a stored token set as documented', async () => {
    const [alice] = DEFAULT_USERS;
    const raw = await h.redis.getBuffer(`${h.prefix}:tok:${alice.sub}`);
    const decoded = JSON.parse(py(['open-token-set', alice.sub], raw!.toString('hex'), keys));
    const stored = await h.store.get(alice.sub);
    expect(decoded).toEqual({ accessToken: stored!.accessToken, refreshToken: stored!.refreshToken });
  });

  it('lets a consumer decrypt token sets with an opaque token and without a refresh token', async () => {
    const cases = [
      { userId: 'py-opaque', tokens: { accessToken: 'opaque-access.not base64!', refreshToken: 'opaque-refresh' } },
      { userId: 'py-no-refresh', tokens: { accessToken: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' } },
      { userId: 'py-control-byte', tokens: { accessToken: `${b64('{"a":"\x01"}')}.${b64('{"exp":1,"iat":2}')}.c2ln` } },
      { userId: 'py-every-entry', tokens: { accessToken: `${b64(`{${JSON_DICTIONARY.join('')}}`)}.c2ln`, refreshToken: 'r' } },
    ];
    for (const { userId, tokens } of cases) {
      await h.store.save({ userId, tokens: { ...tokens, expiresInSeconds: 300, tokenType: 'Bearer' }, issuedAtMs: Date.now() });
      const raw = await h.redis.getBuffer(`${h.prefix}:tok:${userId}`);
      expect(JSON.parse(py(['open-token-set', userId], raw!.toString('hex'), keys))).toEqual(tokens);
    }
  });

  it('reads a format-2 token set (written by earlier versions) and refuses malformed plaintexts, as documented', () => {
    const open = (plaintext: Buffer) => py(['open-token-set', 'py-old'], h.config.keyRing.seal(plaintext, tokenSetAad('py-old')).toString('hex'), keys);
    // The format-2 vector of test/token-set-codec.test.ts.
    const format2 = Buffer.from(
      '020000005563626660606090ae564acc4957b2520a0a36323553d2512aa92c50b252f20a0f51aa05c9cb552b15972629592995ea1a2ae928a556142859199a1b40412d230303032788e0cb2f482c2c4dd52d4a4d2b4a2dce00007369676e6174757265',
      'hex',
    );
    expect(JSON.parse(open(format2))).toEqual({
      accessToken: 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl',
      refreshToken: 'opaque-refresh',
    });
    const malformed = [
      [TOKEN_SET_FORMAT, 0, 0], // no access token
      [TOKEN_SET_FORMAT, 7, 0], // unknown kind
      [TOKEN_SET_FORMAT, 2, 1, 9, 0, 0, 0, 1, 0x41, 0], // unknown segment form
      [TOKEN_SET_FORMAT, 1, 0, 0, 0, 9, 0x41], // truncated
      [TOKEN_SET_FORMAT, 1, 0, 0, 0, 1, 0x41, 0, 0], // trailing byte
    ];
    for (const bytes of malformed) expect(() => open(Buffer.from(bytes))).toThrow(/ValueError/);
  });

  it('refuses to decrypt a token set under another user id (AAD)', () => {
    return h.redis.getBuffer(`${h.prefix}:tok:${DEFAULT_USERS[0].sub}`).then((raw) => {
      expect(() => py(['open-token-set', DEFAULT_USERS[1].sub], raw!.toString('hex'), keys)).toThrow(/InvalidTag/);
    });
  });
});
