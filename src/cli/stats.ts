import { Queue } from 'bullmq';
import type { Command } from '../cli.js';
import { loadConfig } from '../shared/config.js';
import { EXCHANGE_QUEUE, REFRESH_QUEUE } from '../shared/job-contract.js';
import { KeyLayout } from '../shared/keys.js';
import { createFastFailConnection, waitUntilReady, type RedisClient } from '../shared/redis.js';
import { countUsersByState } from '../shared/token-store.js';

/** Job counts of one queue. */
export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  prioritized: number;
  failed: number;
  completed: number;
}

/** A snapshot for operators. */
export interface BrokerStats {
  queues: Record<string, QueueCounts>;
  /** Users by metadata `state` (active, reauth_required, revoked). */
  usersByState: Record<string, number>;
  /** Users whose next refresh is due within the next 60 s (including overdue ones). */
  dueNextMinute: number;
  /** Users whose refresh is already overdue. */
  overdue: number;
  /** Entries in the state-change stream `<prefix>:events`. */
  eventsLength: number;
}

/**
 * Collects {@link BrokerStats}. Users by state come from a SCAN over every metadata key with one
 * HGET each: O(users), fine for an operator command, not for a dashboard polled every second.
 */
export async function collectStats(redis: RedisClient, prefix: string, nowMs = Date.now()): Promise<BrokerStats> {
  const keys = new KeyLayout(prefix);
  const queues: Record<string, QueueCounts> = {};
  for (const name of [EXCHANGE_QUEUE, REFRESH_QUEUE]) {
    const queue = new Queue(name, { connection: redis, prefix });
    queue.on('error', () => {});
    try {
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
      queues[name] = {
        waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0,
        prioritized: c.prioritized ?? 0, failed: c.failed ?? 0, completed: c.completed ?? 0,
      };
    } finally {
      await queue.close().catch(() => {});
    }
  }
  const usersByState = await countUsersByState(redis, keys);
  const [dueNextMinute, overdue, eventsLength] = await Promise.all([
    redis.zcount(keys.due, '-inf', nowMs + 60_000),
    redis.zcount(keys.due, '-inf', nowMs),
    redis.xlen(keys.events),
  ]);
  return { queues, usersByState, dueNextMinute, overdue, eventsLength };
}

/** `tokex stats`: queue counts, users by state, refreshes due soon. */
export const command: Command = {
  summary: 'Show queue counts, users by token state, refreshes due in the next minute and the events stream length.',
  usage: 'tokex stats [--json]',
  async run(args) {
    const config = loadConfig();
    const redis = createFastFailConnection(config.redis, { connectionName: 'tokex-stats', maxRetriesPerRequest: 3 });
    redis.on('error', () => {});
    try {
      await waitUntilReady(redis, 5000);
      const stats = await collectStats(redis, config.prefix);
      process.stdout.write(args.includes('--json') ? `${JSON.stringify(stats)}\n` : format(config.prefix, stats));
      return 0;
    } finally {
      redis.disconnect();
    }
  },
};

function format(prefix: string, s: BrokerStats): string {
  const lines = [`prefix ${prefix}`, '', 'queue      waiting  active  delayed  prioritized  failed  completed'];
  for (const [name, c] of Object.entries(s.queues)) {
    lines.push([
      name.padEnd(9), String(c.waiting).padStart(8), String(c.active).padStart(7), String(c.delayed).padStart(8),
      String(c.prioritized).padStart(12), String(c.failed).padStart(7), String(c.completed).padStart(10),
    ].join(' '));
  }
  const states = Object.entries(s.usersByState);
  lines.push('', `users      ${states.length === 0 ? 'none' : states.map(([state, n]) => `${state} ${n}`).join(', ')}`);
  lines.push(`due        ${s.dueNextMinute} in the next minute (${s.overdue} overdue)`);
  lines.push(`events     ${s.eventsLength} entries`);
  return `${lines.join('\n')}\n`;
}
