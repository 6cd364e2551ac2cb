import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenProducer } from '../src/producer/token-producer.js';
import { envelopeKeyId, KeyRing } from '../src/shared/crypto.js';
import { KeyLayout } from '../src/shared/keys.js';
import { TokenStore } from '../src/shared/token-store.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

/**
 * The `tokex` command as users run it: a child process on the TypeScript sources (tsx loader),
 * started in an empty directory so no `.env` of the working tree leaks in.
 */

const cliPath = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const tsxLoader = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const workDir = mkdtempSync(join(tmpdir(), 'tokex-cli-'));

interface RunResult { code: number | null; stdout: string; stderr: string }

function tokex(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsxLoader, cliPath, ...args], {
      cwd: workDir,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const specA = KeyRing.generateSpec('A');
const specB = KeyRing.generateSpec('B');
const prefix = uniquePrefix('cli');
const redis = testRedis();
const brokerEnv = { REDIS_URL: TEST_REDIS_URL, TOKEX_PREFIX: prefix, TOKEN_ENCRYPTION_KEYS: specA };

beforeAll(async () => {
  const store = new TokenStore({ redis, prefix, keyRing: KeyRing.parse(specA) });
  const tokens = (expiresInSeconds: number) => ({
    accessToken: fakeJwt({ n: Math.random() }), refreshToken: fakeJwt({ typ: 'Offline' }),
    expiresInSeconds, refreshExpiresInSeconds: 0, tokenType: 'Bearer',
  });
  // Due = access expiry minus the 60 s skew: 90 s tokens are due within the minute, 3600 s ones not.
  await store.save({ userId: 'soon', tokens: tokens(90), issuedAtMs: Date.now() });
  await store.save({ userId: 'later', tokens: tokens(3600), issuedAtMs: Date.now() });
  await store.save({ userId: 'gone', tokens: tokens(3600), issuedAtMs: Date.now() });
  await store.end('gone', 'reauth_required', 'invalid_grant');
  const producer = new TokenProducer({ redis: TEST_REDIS_URL, prefix, keyRing: KeyRing.parse(specA) });
  await producer.enqueueExchange({ subjectToken: fakeJwt({ sub: 'q1', exp: epochSeconds(600) }) });
  await producer.enqueueExchange({ subjectToken: fakeJwt({ sub: 'q2', exp: epochSeconds(600) }) });
  await producer.close();
});

afterAll(async () => {
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
  rmSync(workDir, { recursive: true, force: true });
});

describe('tokex', () => {
  it('lists its commands, stats and rekey among them, on --help', async () => {
    const result = await tokex(['--help']);
    expect(result.code).toBe(0);
    for (const name of ['start', 'keygen', 'stats', 'rekey']) expect(result.stdout).toContain(`  ${name}`);
  });

  it('answers an unknown command with one line on stderr and a non-zero exit', async () => {
    const result = await tokex(['frobnicate']);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('unknown command "frobnicate"');
  });

  it('prints usage for `<command> --help` without touching Redis or the configuration', async () => {
    for (const name of ['stats', 'rekey', 'keygen']) {
      const result = await tokex([name, '--help']);
      expect(result.code, name).toBe(0);
      expect(result.stdout).toContain(`Usage: tokex ${name}`);
    }
  });
});

describe('tokex keygen', () => {
  it('prints one key entry TOKEN_ENCRYPTION_KEYS accepts', async () => {
    const result = await tokex(['keygen', '--id', 'k2']);
    expect(result.code).toBe(0);
    const line = result.stdout.trim();
    expect(line).toMatch(/^k2:[A-Za-z0-9+/]{43}=$/);
    expect(KeyRing.parse(line).primary.id).toBe('k2');
  });

  it('refuses a bad key id with one line and a non-zero exit', async () => {
    const result = await tokex(['keygen', '--id', 'bad id!']);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('config_invalid');
  });
});

describe('tokex stats', () => {
  it('reports queue counts, users by state, due soon and the events length as JSON', async () => {
    const result = await tokex(['stats', '--json'], brokerEnv);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const stats = JSON.parse(result.stdout);
    expect(stats.queues.exchange).toMatchObject({ waiting: 2, active: 0, failed: 0 });
    expect(stats.queues.refresh).toMatchObject({ waiting: 0, active: 0 });
    expect(stats.usersByState).toEqual({ active: 2, reauth_required: 1 });
    expect(stats.dueNextMinute).toBe(1);
    expect(stats.overdue).toBe(0);
    expect(stats.eventsLength).toBe(4);
  });

  it('prints a table for people', async () => {
    const result = await tokex(['stats'], brokerEnv);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^exchange\s+2\s+0/m);
    expect(result.stdout).toContain('active 2');
    expect(result.stdout).toContain('reauth_required 1');
    expect(result.stdout).toContain('1 in the next minute');
  });

  it('fails with a non-zero exit naming the missing variable when the configuration is incomplete', async () => {
    const result = await tokex(['stats'], { REDIS_URL: TEST_REDIS_URL, TOKEX_PREFIX: prefix });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^tokex: config_invalid/);
    expect(result.stderr).toContain('TOKEN_ENCRYPTION_KEYS');
  });

  it('fails with one line when Redis does not answer', async () => {
    const result = await tokex(['stats'], { ...brokerEnv, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('redis_unavailable');
  });
});

describe('tokex rekey', () => {
  it('refuses a bad --resume-from with one line and changes nothing', async () => {
    const result = await tokex(['rekey', '--resume-from', 'abc'], { ...brokerEnv, TOKEN_ENCRYPTION_KEYS: `${specB},${specA}` });
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('invalid_input');
    expect(envelopeKeyId((await redis.getBuffer(new KeyLayout(prefix).tokens('soon')))!)).toBe('A');
  });

  it('re-encrypts with the new first key, printing progress, and a second run finds nothing to do', async () => {
    const env = { ...brokerEnv, TOKEN_ENCRYPTION_KEYS: `${specB},${specA}` };
    const first = await tokex(['rekey'], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('token-sets: scanned 3, rekeyed 2');
    expect(first.stdout).toContain('jobs: scanned 2, rekeyed 2');
    expect(first.stdout).toContain('every envelope uses the primary key');
    const keys = new KeyLayout(prefix);
    for (const userId of ['soon', 'later']) expect(envelopeKeyId((await redis.getBuffer(keys.tokens(userId)))!)).toBe('B');
    const second = await tokex(['rekey'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('token-sets: scanned 3, rekeyed 0');
    expect(second.stdout).toContain('jobs: scanned 2, rekeyed 0');
  });
});
