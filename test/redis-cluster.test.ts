import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_USERS, startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { eventually } from './helpers/logs.js';
import { dumpPrefix } from './helpers/redis.js';

// A real three-master Redis Cluster on loopback, started and stopped by this suite.
const PORTS = [7311, 7312, 7313];
const hasRedis = spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;

describe.skipIf(!hasRedis)('on a Redis Cluster (three masters, hash-tagged prefix)', () => {
  const nodes: ChildProcess[] = [];
  let dir: string;
  let iam: DevIam;
  let h: Harness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tokex-cluster-'));
    for (const port of PORTS) {
      nodes.push(spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no',
      ], { stdio: 'ignore' }));
    }
    await eventually(() => PORTS.every((p) => spawnSync('redis-cli', ['-p', String(p), 'ping'], { encoding: 'utf8' }).stdout.includes('PONG')));
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...PORTS.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(`cluster create failed: ${create.stdout}${create.stderr}`);
    await eventually(() => PORTS.every((p) => spawnSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' }).stdout.includes('cluster_state:ok')), 20_000);

    iam = await startDevIam({ accessTokenTtlSeconds: 3 });
    h = await startHarness({
      iam,
      roles: ['worker', 'refresh', 'scheduler'],
      env: {
        REDIS_CLUSTER: 'true',
        REDIS_URL: PORTS.map((p) => `redis://127.0.0.1:${p}`).join(','),
        REFRESH_TICK_MS: '250',
        REFRESH_SKEW_SECONDS: '1',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    await iam?.close();
    for (const node of nodes) node.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('exchanges, stores, refreshes on schedule and serves readers, with no token in plaintext', async () => {
    const [alice] = DEFAULT_USERS;
    const subjectToken = await iam.issueUserToken({ sub: alice.sub });
    const { jobId } = await h.producer.enqueueExchange({ subjectToken, userId: alice.sub });
    expect((await h.waitForJob(jobId)).state).toBe('completed');
    const first = await h.store.get(alice.sub);
    expect(first?.status).toMatchObject({ state: 'active', offline: true });

    // Access tokens live 3 s: the scheduler must refresh them through the cluster.
    await eventually(async () => ((await h.store.status(alice.sub))?.version ?? 0) >= 3, 20_000);
    expect(iam.stats.refresh).toBeGreaterThanOrEqual(2);
    const token = await h.store.getAccessToken(alice.sub, { minValiditySeconds: 1 });
    expect(token).not.toBe(first?.accessToken);

    const dump = await dumpPrefix(h.redis, h.prefix);
    expect(dump).toContain(`${h.prefix}:meta:${alice.sub}`);
    for (const secret of [subjectToken, first!.accessToken, first!.refreshToken!, token]) expect(dump).not.toContain(secret);
  });
});
