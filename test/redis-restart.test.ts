import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type Broker } from '../src/broker.js';
import { startDevIam, type DevIam, type DevIamUser } from '../src/dev-iam/index.js';
import { TokenProducer } from '../src/producer/token-producer.js';
import { KeyRing } from '../src/shared/crypto.js';
import { isTokexError } from '../src/shared/errors.js';
import { loadConfig } from '../src/shared/config.js';
import { startHarness, harnessEnv, type Harness } from './helpers/harness.js';
import { captureLogger, eventually } from './helpers/logs.js';
import { dumpPrefix, uniquePrefix } from './helpers/redis.js';
import { HAS_REDIS_SERVER, startOwnRedisServer, type OwnRedisServer } from './helpers/redis-server.js';

/**
 * "Nothing is lost" across a Redis restart, against a redis-server this file starts on its own
 * loopback port (AOF, fsync always): stored tokens survive and decrypt, the running broker (worker,
 * refresh, scheduler, the harness's producer and event listener) reconnects by itself, a job in
 * flight and a job still waiting complete after the restart; and a worker process killed with
 * SIGKILL mid-job has its job taken over by another worker once the lock expires.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const user = (name: string): DevIamUser => ({ username: name, password: `${name}-password`, sub: randomUUID() });
const digest = (token: string | undefined) => (token === undefined ? 'none' : createHash('sha256').update(token).digest('hex'));
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map(user);
const [alice, bob, carol, dave, erin, frank] = USERS;

if (!HAS_REDIS_SERVER) console.warn('redis-restart.test.ts skipped: no redis-server binary on the PATH');

describe.skipIf(!HAS_REDIS_SERVER)('Redis restart (own redis-server with AOF)', () => {
  let server: OwnRedisServer;
  let iam: DevIam;
  let h: Harness;
  /** A plain connection to our own Redis for assertions (h.redis points at the shared test Redis). */
  let redis: Redis;
  const secrets: string[] = [];

  beforeAll(async () => {
    server = await startOwnRedisServer();
    iam = await startDevIam({ users: USERS });
    h = await startHarness({
      iam,
      roles: ['worker', 'refresh', 'scheduler'],
      env: { REDIS_URL: server.url, REFRESH_TICK_MS: '250', REFRESH_SKEW_SECONDS: '1' },
    });
    redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
    redis.on('error', () => {});
  }, 30_000);

  afterAll(async () => {
    iam?.faults.reset();
    await h?.close();
    redis?.disconnect();
    await iam?.close();
    await server?.close();
  });

  const exchange = async (producer: TokenProducer, who: DevIamUser) => {
    const subjectToken = await iam.issueUserToken({ sub: who.sub });
    secrets.push(subjectToken);
    return producer.enqueueExchange({ subjectToken, userId: who.sub });
  };

  it('exchanges and stores a token set on the own Redis', async () => {
    const { jobId } = await exchange(h.producer, alice);
    expect(await h.waitForJob(jobId)).toMatchObject({ state: 'completed' });
    const stored = await h.store.get(alice.sub);
    expect(stored?.status).toMatchObject({ state: 'active', version: 1, offline: true, username: 'alice' });
    secrets.push(stored!.accessToken, stored!.refreshToken!);
    expect(await redis.exists(`${h.prefix}:tok:${alice.sub}`)).toBe(1);
  });

  it('keeps stored tokens, an in-flight job and a waiting job across a restart; the broker reconnects by itself', async () => {
    const before = await h.store.get(alice.sub);
    expect(before).not.toBeNull();

    // Job in flight: the IAM answers bob's exchange slowly, so the worker holds it while Redis goes away.
    iam.faults.setLatencyMs(1500);
    const exchangesBefore = iam.stats.exchange;
    const inFlight = await exchange(h.producer, bob);
    await eventually(async () => (await h.producer.queue.getJobState(inFlight.jobId)) === 'active', 10_000, 10);
    // Job waiting: the queue is paused (a state kept in Redis too), carol's job sits there unprocessed.
    await h.producer.queue.pause();
    const waiting = await exchange(h.producer, carol);
    expect(await h.producer.queue.getJobState(waiting.jobId)).toMatch(/^(waiting|paused)$/);

    await server.stop('SIGTERM');
    // Redis stays down until the worker has the IAM's answer and cannot store it: it must hold it.
    await eventually(() => h.logs.text().includes('retrying with the tokens held in memory'), 15_000);
    iam.faults.setLatencyMs(0);
    await server.start();
    // The broker's connections come back by themselves (nobody touches them); fail-fast callers wait for that.
    const { clientConnection, workerConnection } = h.broker.context;
    await eventually(() => clientConnection.status === 'ready' && workerConnection.status === 'ready', 15_000);

    // The stored token set and metadata are still there and decrypt.
    const after = await h.store.get(alice.sub);
    // Compared by digest so that a failure does not print tokens.
    expect(digest(after?.accessToken)).toBe(digest(before!.accessToken));
    expect(digest(after?.refreshToken)).toBe(digest(before!.refreshToken));
    expect(after?.status).toEqual(before!.status);

    // The in-flight job completes: the worker stored the tokens it held (one exchange at the IAM).
    expect(await h.waitForJob(inFlight.jobId, 30_000)).toMatchObject({ state: 'completed' });
    expect((await h.store.get(bob.sub))?.status).toMatchObject({ state: 'active', version: 1 });
    expect(iam.stats.exchange).toBe(exchangesBefore + 1); // stored from memory, not exchanged again

    // The waiting job is still there, and runs once the queue resumes. (The harness's producer has its
    // own fail-fast connection, which may still be in its reconnect backoff: ask until it answers.)
    const waitingState = await eventually(() => h.producer.queue.getJobState(waiting.jobId).catch(() => undefined), 15_000, 200);
    expect(waitingState).toMatch(/^(waiting|paused)$/);
    await h.producer.queue.resume();
    expect(await h.waitForJob(waiting.jobId, 30_000)).toMatchObject({ state: 'completed' });
    expect((await h.store.get(carol.sub))?.status).toMatchObject({ state: 'active', version: 1 });

    // New jobs after the restart: through the harness's producer (reconnected) and a fresh one.
    const again = await eventually(() => exchange(h.producer, dave).catch((err: unknown) => {
      if (isTokexError(err, 'redis_unavailable')) return undefined; // the contract: fail fast, caller retries
      throw err;
    }), 15_000, 200);
    expect(await h.waitForJob(again!.jobId, 30_000)).toMatchObject({ state: 'completed' });
    const fresh = new TokenProducer({ redis: server.url, prefix: h.prefix, keyRing: h.config.keyRing });
    try {
      // The scheduler and refresh worker survived too: erin's short-lived token gets refreshed on schedule.
      iam.configure({ accessTokenTtlSeconds: 4 });
      const { jobId } = await exchange(fresh, erin);
      expect(await h.waitForJob(jobId, 30_000)).toMatchObject({ state: 'completed' });
      iam.configure({ accessTokenTtlSeconds: 300 });
      await eventually(async () => ((await h.store.status(erin.sub))?.version ?? 0) >= 2, 20_000);
    } finally {
      iam.configure({ accessTokenTtlSeconds: 300 });
      await fresh.close();
    }

    for (const who of [alice, bob, carol, dave, erin]) {
      const stored = await h.store.get(who.sub);
      secrets.push(stored!.accessToken, stored!.refreshToken!);
    }
    // No token in plaintext in Redis or in the logs, outage included (counted, so a failure prints none).
    const dump = await dumpPrefix(redis, h.prefix);
    const logText = h.logs.text();
    expect(secrets.filter((secret) => dump.includes(secret) || logText.includes(secret)).length).toBe(0);
  }, 60_000);

  it('hands the job of a worker process killed with SIGKILL mid-job to another worker', async () => {
    const prefix = uniquePrefix('kill');
    const spec = KeyRing.generateSpec('kill');
    const env = harnessEnv(iam, prefix, { REDIS_URL: server.url, TOKEN_ENCRYPTION_KEYS: spec, LOG_LEVEL: 'warn' });
    const producer = new TokenProducer({ redis: server.url, prefix, keyRing: KeyRing.parse(spec) });
    let child: ChildProcess | undefined;
    let broker: Broker | undefined;
    try {
      // The production entry point, as its own process, running only the exchange worker.
      child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--roles', 'worker'], {
        cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore',
      });
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      iam.faults.setLatencyMs(60_000); // the child is stuck at the IAM with the job when it dies
      const { jobId } = await exchange(producer, frank);
      // Only the child works on this prefix: once the job is active, the child holds it.
      await eventually(async () => (await producer.queue.getJobState(jobId)) === 'active', 20_000, 20);
      expect(await redis.exists(`${prefix}:exchange:${jobId}:lock`)).toBe(1);
      child.kill('SIGKILL');
      await exited;
      iam.faults.setLatencyMs(0);
      expect(await producer.queue.getJobState(jobId)).toBe('active');

      // Another worker on the same Redis and prefix notices the stalled job once the lock expires.
      const logs = captureLogger('warn');
      broker = await startBroker(loadConfig({ env, need: ['iam'] }), logs.logger, ['worker']);
      await eventually(async () => (await producer.queue.getJobState(jobId)) === 'completed', 40_000, 100);
      const job = await Job.fromId(producer.queue, jobId);
      expect(job?.stalledCounter).toBeGreaterThanOrEqual(1);
      const stored = await broker.context.store.get(frank.sub);
      expect(stored?.status).toMatchObject({ state: 'active', version: 1, username: 'frank' });
      const dump = await dumpPrefix(redis, prefix);
      expect([...secrets, stored!.accessToken, stored!.refreshToken!].filter((secret) => dump.includes(secret)).length).toBe(0);
    } finally {
      iam.faults.setLatencyMs(0);
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await broker?.close();
      await producer.close();
      await redis.del(...(await redis.keys(`${prefix}:*`)), `${prefix}:none`);
    }
  }, 60_000);
});
