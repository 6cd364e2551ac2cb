import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../src/shared/crypto.js';
import { TokenStore } from '../src/shared/token-store.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';

const run = promisify(execFile);
const TSX = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

describe('tokex token and a store without an IAM client', () => {
  const redis = testRedis();
  const prefix = uniquePrefix('cli');
  const spec = KeyRing.generateSpec('cli');
  const store = new TokenStore({ redis, prefix, keyRing: KeyRing.parse(spec) });
  const env = { ...process.env, REDIS_URL: TEST_REDIS_URL, TOKEX_PREFIX: prefix, TOKEN_ENCRYPTION_KEYS: spec, IAM_TOKEN_URL: '' };
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const jwt = (sub: string, lifetimeSeconds: number) => `${enc({ alg: 'RS256' })}.${enc({ sub, exp: Math.floor(Date.now() / 1000) + lifetimeSeconds })}.c2lnbmF0dXJlLWJ5dGVz`;
  const accessToken = jwt('cli-user', 600);

  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('prints the status without any token, and the access token only with --access-token', async () => {
    await store.save({ userId: 'cli-user', tokens: { accessToken, expiresInSeconds: 600, refreshToken: jwt('cli-user', 0), refreshExpiresInSeconds: 0, tokenType: 'Bearer' }, issuedAtMs: Date.now() });
    const status = await run(TSX, [CLI, 'token', 'cli-user'], { env });
    expect(JSON.parse(status.stdout)).toMatchObject({ userId: 'cli-user', state: 'active', offline: true, refreshable: true });
    expect(status.stdout).not.toContain('eyJ');
    const token = await run(TSX, [CLI, 'token', 'cli-user', '--access-token'], { env });
    expect(token.stdout.trim()).toBe(accessToken);
  }, 30_000);

  it('exits non-zero with a specific code for an unknown user', async () => {
    await expect(run(TSX, [CLI, 'token', 'nobody'], { env })).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('not_found') });
  }, 30_000);

  it('a store without an IAM client reads valid tokens and says config_invalid when a refresh is needed', async () => {
    await expect(store.getAccessToken('cli-user', { minValiditySeconds: 30 })).resolves.toBe(accessToken);
    // Issued 400 s ago for 600 s: 200 s left, less than asked and less than half its lifetime.
    await store.save({ userId: 'cli-old', tokens: { accessToken: jwt('cli-old', 200), expiresInSeconds: 600, tokenType: 'Bearer' }, issuedAtMs: Date.now() - 400_000 });
    await expect(store.getAccessToken('cli-old', { minValiditySeconds: 100 })).resolves.toMatch(/^eyJ/);
    await expect(store.getAccessToken('cli-old', { minValiditySeconds: 300 })).rejects.toMatchObject({ code: 'config_invalid' });
    await expect(store.getAccessToken('nobody')).rejects.toMatchObject({ code: 'not_found' });
  });
});
