import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_USERS } from '../src/dev-iam/index.js';
import { dumpPrefix } from './helpers/redis.js';
import { fakeJwt, startApiHarness, type ApiHarness } from './helpers/http-api.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus.js';

const alice = DEFAULT_USERS.find((u) => u.username === 'alice')!;
const bob = DEFAULT_USERS.find((u) => u.username === 'bob')!;

/** RFC 7662 introspection at the dev IAM as the worker client. */
async function introspect(h: ApiHarness, token: string): Promise<{ active: boolean }> {
  const res = await fetch(h.iam.introspectionUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, client_id: h.iam.workerClient.clientId, client_secret: h.iam.workerClient.clientSecret }),
  });
  return (await res.json()) as { active: boolean };
}

describe('end to end through HTTP: dev IAM, worker, producer role', () => {
  let h: ApiHarness;
  const secrets: string[] = [];
  beforeAll(async () => {
    h = await startApiHarness({ roles: ['worker'] });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('POST a dev-IAM token → ?wait=5 completed → user active → DELETE → refresh token inactive at the IAM', async () => {
    const subjectToken = await h.iam.issueUserToken({ sub: alice.sub });
    secrets.push(subjectToken);
    const posted = await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken, userId: alice.sub } });
    expect(posted.status).toBe(202);
    const { jobId } = (await posted.json()) as { jobId: string };

    const done = await h.call(`/v1/exchanges/${jobId}?wait=5`);
    expect(done.status).toBe(200);
    expect(await done.json()).toEqual({ jobId, state: 'completed', userId: alice.sub });
    // Still answerable after completion (completed jobs are kept for a while).
    expect(await (await h.call(`/v1/exchanges/${jobId}`)).json()).toMatchObject({ state: 'completed' });

    const user = await h.call(`/v1/users/${alice.sub}`);
    expect(user.status).toBe(200);
    const status = (await user.json()) as Record<string, unknown>;
    expect(status).toMatchObject({ userId: alice.sub, state: 'active', refreshable: true, username: 'alice' });

    const stored = await h.store.get(alice.sub);
    const refreshToken = stored!.refreshToken!;
    secrets.push(stored!.accessToken, refreshToken);
    expect((await introspect(h, refreshToken)).active).toBe(true);

    const deleted = await h.call(`/v1/users/${alice.sub}/tokens`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    expect((await introspect(h, refreshToken)).active).toBe(false);
    expect(await (await h.call(`/v1/users/${alice.sub}`)).json()).toMatchObject({ state: 'revoked', reason: 'revoked_by_api' });
    expect(await h.store.get(alice.sub)).toBeNull();
  });

  it('?wait on a job the IAM refuses answers failed with the reason code', async () => {
    // Well-formed and unexpired, but not signed by the IAM: the exchange is refused.
    const forged = fakeJwt({ sub: bob.sub, exp: Math.floor(Date.now() / 1000) + 600 });
    secrets.push(forged);
    const { jobId } = (await (await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken: forged } })).json()) as { jobId: string };
    const res = await h.call(`/v1/exchanges/${jobId}?wait=5`);
    const body = (await res.json()) as { state: string; error?: string; message?: string };
    expect(body).toMatchObject({ state: 'failed', error: 'subject_token_invalid' });
    expect(body.message).not.toContain(forged);
  });

  it('/metrics parses as Prometheus text and its counters moved with the jobs', async () => {
    const text = await (await h.call('/metrics', { auth: false })).text();
    const families = parsePrometheusText(text);
    for (const name of [
      'tokex_jobs_total', 'tokex_job_latency_seconds', 'tokex_iam_requests_total', 'tokex_iam_request_duration_seconds',
      'tokex_users', 'tokex_tokens_due_next_minute', 'tokex_redis_errors_total', 'tokex_queue_jobs', 'tokex_http_exchange_requests_total',
    ]) expect(families.has(name), name).toBe(true);
    expect(sampleValue(families, 'tokex_jobs_total', { queue: 'exchange', outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'tokex_jobs_total', { queue: 'exchange', outcome: 'failed', reason: 'subject_token_invalid' })).toBe(1);
    expect(sampleValue(families, 'tokex_job_latency_seconds_count', { queue: 'exchange' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'tokex_iam_requests_total', { call: 'exchange', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'tokex_iam_requests_total', { call: 'revoke', status: '200' })).toBe(1);
    expect(sampleValue(families, 'tokex_iam_request_duration_seconds_count', { call: 'exchange' })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(families, 'tokex_http_exchange_requests_total', { outcome: 'accepted' })).toBe(2);
    expect(sampleValue(families, 'tokex_users', { state: 'revoked' })).toBe(1);
    expect(sampleValue(families, 'tokex_queue_jobs', { queue: 'exchange', state: 'failed' })).toBe(1);
    expect(sampleValue(families, 'tokex_tokens_due_next_minute', {})).toBe(0);
  });

  it('tokex revoke <userId> revokes through the same path', async () => {
    const subjectToken = await h.iam.issueUserToken({ sub: bob.sub });
    secrets.push(subjectToken);
    const { jobId } = (await (await h.call('/v1/exchanges', { method: 'POST', json: { subjectToken } })).json()) as { jobId: string };
    expect(await (await h.call(`/v1/exchanges/${jobId}?wait=5`)).json()).toMatchObject({ state: 'completed', userId: bob.sub });
    const refreshToken = (await h.store.get(bob.sub))!.refreshToken!;
    secrets.push(refreshToken);
    const env = {
      REDIS_URL: h.config.redisUrl,
      TOKEX_PREFIX: h.prefix,
      TOKEN_ENCRYPTION_KEYS: h.keySpec,
      IAM_TOKEN_URL: h.iam.tokenUrl,
      IAM_CLIENT_ID: h.iam.workerClient.clientId,
      IAM_CLIENT_SECRET: h.iam.workerClient.clientSecret,
      IAM_REVOCATION_URL: h.iam.revocationUrl,
    };
    const result = await tokex(['revoke', bob.sub], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`revoked ${bob.sub} (refresh token revoked at the IAM`);
    expect((await introspect(h, refreshToken)).active).toBe(false);
    expect(await h.store.status(bob.sub)).toMatchObject({ state: 'revoked', reason: 'revoked_by_cli' });
    const again = await tokex(['revoke', 'nobody'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('tokex: not_found: no tokens stored for nobody\n');
  });

  it('kept every token out of the logs and out of Redis', async () => {
    const logs = h.logs.text();
    // The logger scrubs token-shaped text: no line may even have needed it.
    expect(logs).not.toContain('[REDACTED]');
    const redisDump = await dumpPrefix(h.redis, h.prefix);
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      expect(redisDump).not.toContain(secret);
      expect(logs).not.toContain(secret.split('.')[1] ?? secret);
    }
  });
});

const cliPath = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const tsxLoader = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

function tokex(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'tokex-revoke-'));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsxLoader, cliPath, ...args], {
      cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}
