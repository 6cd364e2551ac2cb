/**
 * `npm run bench:api`: throughput and latency of `POST /v1/exchanges` (issue 4).
 *
 * This process runs the producer role (HTTP API only, no worker: jobs just accumulate) on the local
 * Redis under a fresh prefix; a SEPARATE process loads it:
 *   1. fixed rate: 2,000 requests/s for 10 s, evenly paced over 32 connections, for the p99 at a
 *      realistic load (bench/api-load-rate.mjs, an undici loop; latency counted from when each
 *      request was due);
 *   2. saturation: `--seconds` (default 20) with `--connections` (default 64) (bench/api-load.mjs,
 *      autocannon);
 * and, in this process, the raw BullMQ `queue.add` rate and `TokenProducer.enqueueExchange` rate
 * for comparison. Every key under the prefix is deleted at the end.
 *
 * Options: --seconds <n> --connections <n> --pipelining <n> --skip-raw
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startBroker } from '../src/broker.js';
import type { HttpRole } from '../src/producer/http-role.js';
import { TokenProducer } from '../src/producer/token-producer.js';
import { loadConfig } from '../src/shared/config.js';
import { KeyRing } from '../src/shared/crypto.js';
import { EXCHANGE_JOB_NAME, EXCHANGE_JOB_OPTIONS, EXCHANGE_QUEUE } from '../src/shared/job-contract.js';
import { createLogger } from '../src/shared/logger.js';
import { deleteKeysUnder } from '../src/shared/redis.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = arg('--seconds', 20);
const connections = arg('--connections', 64);
const pipelining = arg('--pipelining', 1);
const skipRaw = process.argv.includes('--skip-raw');
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `tokex-bench-api-${randomUUID().slice(0, 8)}`;
const apiKey = `bench-${randomUUID()}`;

/** A Keycloak-sized, JWT-shaped subject token (unsigned: the producer only decodes it) expiring in 1 h. */
function subjectToken(): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    exp: now + 3600, iat: now, jti: randomUUID(), iss: 'http://127.0.0.1:8081/realms/dev', aud: ['tokex-worker', 'account'],
    sub: randomUUID(), typ: 'Bearer', azp: 'tokex-frontend', sid: randomUUID(), scope: 'openid profile email',
    email_verified: true, name: 'Alice Example', preferred_username: 'alice', given_name: 'Alice', family_name: 'Example',
    email: 'alice@example.org', realm_access: { roles: ['default-roles-dev', 'offline_access', 'uma_authorization'] },
  };
  return `${enc({ alg: 'RS256', typ: 'JWT', kid: randomUUID() })}.${enc(claims)}.${Buffer.alloc(256, 7).toString('base64url')}`;
}

function runLoad(url: string, body: string, durationSeconds: number, overallRate?: number): Promise<Record<string, unknown>> {
  const script = fileURLToPath(new URL(overallRate ? './api-load-rate.mjs' : './api-load.mjs', import.meta.url));
  const settings = JSON.stringify({ url, apiKey, body, connections: overallRate ? 32 : connections, pipelining, durationSeconds, overallRate });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, settings], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`load process exited ${code}`))));
  });
}

/** Runs `op` with `inFlight` concurrent callers for `durationMs`; returns ops/s. */
async function rate(op: () => Promise<unknown>, durationMs: number, inFlight: number): Promise<number> {
  const end = performance.now() + durationMs;
  let done = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      await op();
      done++;
    }
  }));
  return Math.round(done / ((performance.now() - started) / 1000));
}

function cpuPerRequestUs(used: NodeJS.CpuUsage, requests: number): number {
  return Math.round((used.user + used.system) / Math.max(1, requests));
}

/** Starts the producer role, warms it up for 3 s, then loads it; returns the load's result. */
async function phase(
  config: ReturnType<typeof loadConfig>, body: string, durationSeconds: number, overallRate?: number,
): Promise<{ result: Record<string, unknown>; cpuUs: number; waiting: number }> {
  const broker = await startBroker(config, createLogger({ level: 'warn' }), ['producer']);
  try {
    const url = (broker.roles[0] as HttpRole).url;
    await runLoad(url, body, 3, overallRate); // warm-up (JIT, connection pools)
    const cpu = process.cpuUsage();
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const result = await runLoad(url, body, durationSeconds, overallRate);
    loopDelay.disable();
    const cpuUs = cpuPerRequestUs(process.cpuUsage(cpu), result.total as number);
    console.log(`  API event-loop delay: p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`);
    const redis = new Redis(redisUrl);
    const counts = await new Queue(EXCHANGE_QUEUE, { connection: redis, prefix }).getJobCounts('waiting');
    redis.disconnect();
    return { result, cpuUs, waiting: counts.waiting };
  } finally {
    await broker.close();
  }
}

async function main(): Promise<void> {
  const keySpec = KeyRing.generateSpec('bench');
  const config = loadConfig({
    env: {
      REDIS_URL: redisUrl, TOKEX_PREFIX: prefix, TOKEN_ENCRYPTION_KEYS: keySpec, LOG_LEVEL: 'warn',
      HTTP_PORT: '0', PRODUCER_API_KEYS: apiKey, ADMIN_UI: 'false',
    },
  });
  const redis = new Redis(redisUrl);
  const body = JSON.stringify({ subjectToken: subjectToken() });
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} CPUs; body ${body.length} bytes; prefix ${prefix}`);
  try {
    if (!skipRaw) {
      const queue = new Queue(EXCHANGE_QUEUE, { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix });
      const keyRing = KeyRing.parse(keySpec);
      const sealed = keyRing.sealToString(subjectToken(), 'tokex/subject-token/v1');
      const data = { v: 1, subjectToken: sealed, receivedAt: Date.now(), deadlineAt: Date.now() + 3600_000 };
      const addRate = await rate(() => queue.add(EXCHANGE_JOB_NAME, data, { ...EXCHANGE_JOB_OPTIONS, jobId: randomUUID() }), 5000, 256);
      console.log(`raw queue.add (same data, 256 in flight, 5 s): ${addRate} jobs/s`);
      const producer = new TokenProducer({ redis: redisUrl, prefix, keyRing });
      const token = subjectToken();
      const enqueueRate = await rate(() => producer.enqueueExchange({ subjectToken: token }), 5000, 256);
      console.log(`TokenProducer.enqueueExchange (validate + encrypt + add, 256 in flight, 5 s): ${enqueueRate} jobs/s`);
      await producer.close();
      await queue.close();
      await deleteKeysUnder(redis, prefix);
    }

    // Each phase on an empty prefix, the fixed rate first: the saturation phase leaves ~200k waiting
    // jobs behind (there is no worker), and Redis frees them in the background after the run.
    const fixed = await phase(config, body, 10, 2000);
    console.log(`POST /v1/exchanges at a fixed 2,000 req/s (evenly paced), 32 connections, 10 s: ${JSON.stringify(fixed.result)}`);
    console.log(`  API process CPU per request: ${fixed.cpuUs} µs; jobs enqueued: ${fixed.waiting}`);
    await deleteKeysUnder(redis, prefix);
    const saturation = await phase(config, body, seconds);
    console.log(`POST /v1/exchanges, ${connections} connections, pipelining ${pipelining}, ${seconds} s: ${JSON.stringify(saturation.result)}`);
    console.log(`  API process CPU per request: ${saturation.cpuUs} µs; jobs enqueued: ${saturation.waiting}`);
  } finally {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
