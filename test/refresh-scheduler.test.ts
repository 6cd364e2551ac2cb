import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../src/shared/crypto.js';
import { REFRESH_QUEUE } from '../src/shared/job-contract.js';
import { KeyLayout } from '../src/shared/keys.js';
import { createWorkerConnection } from '../src/shared/redis.js';
import { REFRESH_TICK_QUEUE } from '../src/worker/scheduler.js';
import { eventually } from './helpers/logs.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';
import { sleep } from './refresh-support.js';

const CHILD = fileURLToPath(new URL('./refresh-scheduler-child.ts', import.meta.url));

/**
 * Starts a scheduler-only broker process; resolves when it printed "ready". Node itself with the tsx
 * loader (not the tsx CLI, which runs a second process): a signal reaches the broker process directly.
 */
function startChild(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d) => { err += String(d); });
    child.stdout?.on('data', (d) => { if (String(d).includes('ready')) resolve(child); });
    child.on('exit', (code) => reject(new Error(`scheduler child exited with ${code}: ${err.slice(0, 2000)}`)));
  });
}

/** Users with a waiting/delayed refresh job, with their job counts. */
async function jobsPerUser(queue: Queue): Promise<Map<string, number>> {
  const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active'], 0, -1);
  const counts = new Map<string, number>();
  for (const job of jobs) {
    const userId = (job?.data as { userId: string } | undefined)?.userId;
    if (userId) counts.set(userId, (counts.get(userId) ?? 0) + 1);
  }
  return counts;
}

describe('the refresh scheduler started by three processes at once', () => {
  const prefix = uniquePrefix('sched');
  const keys = new KeyLayout(prefix);
  const redis = testRedis();
  const children: ChildProcess[] = [];
  let refreshQueue: Queue;
  let tickQueue: Queue;
  let tickEvents: QueueEvents;
  let ticks = 0;

  beforeAll(async () => {
    const env = {
      REDIS_URL: TEST_REDIS_URL, TOKEX_PREFIX: prefix, TOKEN_ENCRYPTION_KEYS: KeyRing.generateSpec('test'),
      REFRESH_TICK_MS: '200', LOG_LEVEL: 'warn', SHUTDOWN_TIMEOUT_MS: '2000',
    };
    children.push(...(await Promise.all([startChild(env), startChild(env), startChild(env)])));
    refreshQueue = new Queue(REFRESH_QUEUE, { connection: testRedis(), prefix });
    tickQueue = new Queue(REFRESH_TICK_QUEUE, { connection: testRedis(), prefix });
    tickEvents = new QueueEvents(REFRESH_TICK_QUEUE, { connection: createWorkerConnection(TEST_REDIS_URL), prefix });
    tickEvents.on('completed', () => { ticks += 1; });
    await tickEvents.waitUntilReady();
  }, 60_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.on('exit', resolve)))));
    await Promise.all([refreshQueue?.close(), tickQueue?.close(), tickEvents?.close()]);
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  }, 30_000);

  it('keeps one Job Scheduler whose ticks keep firing', async () => {
    expect(await tickQueue.getJobSchedulersCount()).toBe(1);
    const before = ticks;
    // Progress, not speed: ticks keep coming (each every 200 ms; a generous wait for five).
    await eventually(() => ticks - before >= 5, 15_000);
    // One tick at a time: never a pile of scheduled tick jobs.
    expect((await tickQueue.getJobCounts('delayed')).delayed).toBeLessThanOrEqual(1);
  });

  it('enqueues exactly one refresh job per due user, even when the users come due again while queued', async () => {
    const nowMs = Date.now();
    const first = Array.from({ length: 300 }, (_, i) => `user-a${i}`);
    await redis.zadd(keys.due, ...first.flatMap((u, i) => [nowMs - 1000 + i, u]));
    await eventually(async () => (await jobsPerUser(refreshQueue)).size === 300, 10_000);
    // Later arrivals are picked up by later ticks.
    const second = Array.from({ length: 100 }, (_, i) => `user-b${i}`);
    await redis.zadd(keys.due, ...second.flatMap((u) => [Date.now() - 1, u]));
    // And the first users come due again while their job still waits (as when a claim's lease ends).
    await redis.zadd(keys.due, ...first.flatMap((u) => [Date.now() - 1, u]));
    await eventually(async () => (await jobsPerUser(refreshQueue)).size === 400, 10_000);
    await sleep(1000); // several more ticks
    const counts = await jobsPerUser(refreshQueue);
    expect(counts.size).toBe(400);
    expect(Math.max(...counts.values())).toBe(1);
    // Claimed users are leased: no one is due again right away.
    expect(await redis.zcount(keys.due, '-inf', Date.now())).toBe(0);
  });

  it('keeps ticking when one of the three processes dies', async () => {
    children[0].kill('SIGKILL');
    await new Promise((resolve) => children[0].on('exit', resolve));
    await sleep(500);
    const before = ticks;
    await redis.zadd(keys.due, Date.now() - 1, 'user-c0');
    await eventually(async () => (await jobsPerUser(refreshQueue)).has('user-c0'), 10_000);
    await eventually(() => ticks - before >= 3, 15_000);
    expect(await tickQueue.getJobSchedulersCount()).toBe(1);
  }, 30_000);
});
