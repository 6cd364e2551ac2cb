import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { REFRESH_QUEUE } from '../src/shared/job-contract.js';
import { REFRESH_JOB_NAME, refreshJobOptions } from '../src/worker/refresh-worker.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { exchangeUser, makeUsers } from './refresh-support.js';

const users = makeUsers(2, 'backlog');
const BACKLOG = 10_000;

describe('a backlog of refresh jobs', () => {
  let iam: DevIam;
  let h: Harness;
  let refreshQueue: Queue;

  beforeAll(async () => {
    iam = await startDevIam({ users });
    h = await startHarness({ iam, roles: ['worker', 'refresh'], env: { LOG_LEVEL: 'info' } });
    refreshQueue = new Queue(REFRESH_QUEUE, { connection: h.broker.context.workerConnection, prefix: h.prefix });
  });
  afterAll(async () => {
    await refreshQueue?.close();
    await h?.close();
    await iam?.close();
  });

  it('does not hold up a fresh exchange: it completes while the refresh backlog is still mostly pending', async () => {
    const baselineStartMs = performance.now();
    await exchangeUser(h, users[0].sub);
    const baselineMs = performance.now() - baselineStartMs;

    for (let i = 0; i < BACKLOG; i += 1000) {
      await refreshQueue.addBulk(Array.from({ length: 1000 }, (_, j) => {
        const userId = `backlog-${i + j}`;
        return { name: REFRESH_JOB_NAME, data: { v: 1 as const, userId, dueAtMs: Date.now() }, opts: refreshJobOptions(userId) };
      }));
    }
    const pendingAtStart = await pending(refreshQueue);
    expect(pendingAtStart).toBeGreaterThan(BACKLOG * 0.9);

    const startMs = performance.now();
    await exchangeUser(h, users[1].sub);
    const withBacklogMs = performance.now() - startMs;
    const pendingAtEnd = await pending(refreshQueue);
    console.log(`exchange latency: ${baselineMs.toFixed(0)} ms without backlog, ${withBacklogMs.toFixed(0)} ms with ${pendingAtStart} refresh jobs pending (${pendingAtEnd} still pending after)`);
    // The exchange did not wait for the backlog to drain (it is rate limited to 50/s: 200 s).
    expect(pendingAtEnd).toBeGreaterThan(BACKLOG * 0.8);
    expect((await h.store.status(users[1].sub))?.state).toBe('active');
  }, 60_000);
});

async function pending(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
  return (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + (c.active ?? 0);
}
