/**
 * `npm run bench:exchange [-- N]`: N exchanges (default 20,000) against a zero-latency IAM stub in a
 * separate process, on local Redis. Compares the broker (validation, AES-GCM, JWT decode, atomic Lua
 * write with metadata, due index and event) with a naive baseline (a plain BullMQ worker making the
 * same axios call and one unencrypted SET per job), in the same invocation, alternating rounds.
 *
 * Reports, for each: drain throughput (exchanges/s) of N pre-enqueued jobs, and receipt-to-stored
 * latency p50/p99 at a fixed arrival rate.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import inspector from 'node:inspector/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import axios from 'axios';
import { Queue, Worker } from 'bullmq';
import pino from 'pino';
import { TokenProducer } from '../src/producer/token-producer.js';
import { KeyRing } from '../src/shared/crypto.js';
import { IamClient } from '../src/shared/iam-client.js';
import { createWorkerConnection } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';
import { ExchangeWorker } from '../src/worker/exchange-worker.js';
import { cleanupPrefix, testRedis } from '../test/helpers/redis.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LATENCY_RATE_PER_SECOND = 1000;
const LATENCY_SECONDS = 5;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Runner {
  name: string;
  enqueue(subjectToken: string): Promise<void>;
  start(onStored: (receivedAtMs: number) => void): Promise<void>;
  stop(): Promise<void>;
}

function subjectToken(i: number): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const sub = `${randomBytes(4).toString('hex')}-bench-${i}`;
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ sub, exp: now + 600, iat: now, azp: 'tokex-frontend', aud: 'tokex-worker' })}.${randomBytes(256).toString('base64url')}`;
}

function startStub(): Promise<{ child: ChildProcess; tokenUrl: string }> {
  const child = spawn(process.execPath, [new URL('./iam-stub.mjs', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => {
      const port = /listening (\d+)/.exec(String(chunk))?.[1];
      if (!port) reject(new Error(`stub said ${chunk}`));
      resolve({ child, tokenUrl: `http://127.0.0.1:${port}/realms/bench/protocol/openid-connect/token` });
    });
    child.once('error', reject);
  });
}

function naiveRunner(prefix: string, tokenUrl: string): Runner {
  const connection = createWorkerConnection(REDIS_URL);
  const queue = new Queue('naive', { connection, prefix });
  const http1 = axios.create({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 256 }), timeout: 10_000 });
  let worker: Worker | undefined;
  return {
    name: 'naive baseline',
    async enqueue(token) {
      await queue.add('x', { subjectToken: token, receivedAt: Date.now() }, { removeOnComplete: true });
    },
    async start(onStored) {
      worker = new Worker('naive', async (job) => {
        const form = new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: job.data.subjectToken,
          client_id: 'bench', client_secret: 'bench-secret',
        });
        const res = await http1.post(tokenUrl, form.toString(), { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
        const sub = JSON.parse(Buffer.from(res.data.access_token.split('.')[1], 'base64url').toString()).sub;
        await connection.set(`${prefix}:naive:${sub}`, JSON.stringify(res.data));
        onStored(job.data.receivedAt);
      }, { connection, prefix, concurrency: CONCURRENCY, removeOnComplete: { count: 0 } });
      await worker.waitUntilReady();
    },
    async stop() {
      await worker?.close();
      await queue.close();
      connection.disconnect();
    },
  };
}

function brokerRunner(prefix: string, tokenUrl: string): Runner {
  const keyRing = KeyRing.parse(KeyRing.generateSpec('bench'));
  const logger = pino({ level: 'warn' });
  const producer = new TokenProducer({ redis: REDIS_URL, prefix, keyRing });
  const connection = createWorkerConnection(REDIS_URL);
  const storeConnection = createWorkerConnection(REDIS_URL);
  let worker: ExchangeWorker | undefined;
  return {
    name: 'broker',
    async enqueue(token) {
      await producer.enqueueExchange({ subjectToken: token });
    },
    async start(onStored) {
      worker = new ExchangeWorker({
        connection, prefix, keyRing, logger, concurrency: CONCURRENCY,
        iam: new IamClient({ tokenUrl, clientId: 'bench', clientSecret: 'bench-secret', scope: 'offline_access' }),
        store: new TokenStore({ redis: storeConnection, prefix, keyRing }),
      });
      worker.worker.on('completed', (job) => onStored(job.data.receivedAt));
      worker.start();
      await worker.worker.waitUntilReady();
    },
    async stop() {
      await worker?.close();
      await producer.close();
      connection.disconnect();
      storeConnection.disconnect();
    },
  };
}

/** Redis's own CPU time so far (user + sys), in µs, from INFO. */
async function redisCpuUs(redis: ReturnType<typeof testRedis>): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (read('used_cpu_user') + read('used_cpu_sys')) * 1e6;
}

/**
 * With BENCH_CPU_PROFILE=<dir>, records a V8 CPU profile of each drain (not of the enqueueing)
 * into that directory, for `node --cpu-prof`-style analysis of the worker side alone.
 */
async function startProfiler(): Promise<{ stop(name: string): Promise<void> } | undefined> {
  const dir = process.env.BENCH_CPU_PROFILE;
  if (!dir) return undefined;
  const session = new inspector.Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop(name) {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(join(dir, `drain-${name.replace(/\W+/g, '-')}-${Date.now()}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Pre-enqueues N jobs, then starts the worker and times the drain. */
async function drain(make: () => Runner, redis: ReturnType<typeof testRedis>): Promise<{ name: string; perSecond: number; cpuUsPerJob: number; redisUsPerJob: number }> {
  const runner = make();
  const tokens = Array.from({ length: N }, (_, i) => subjectToken(i));
  for (let i = 0; i < N; i += 500) await Promise.all(tokens.slice(i, i + 500).map((t) => runner.enqueue(t)));
  let stored = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const profiler = await startProfiler();
  const started = performance.now();
  const cpu = process.cpuUsage();
  const redisBefore = await redisCpuUs(redis);
  await runner.start(() => {
    stored += 1;
    if (stored === N) done();
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const redisUsPerJob = ((await redisCpuUs(redis)) - redisBefore) / N;
  await profiler?.stop(runner.name);
  await runner.stop();
  return { name: runner.name, perSecond: N / seconds, cpuUsPerJob: (used.user + used.system) / N, redisUsPerJob };
}

/** Starts the worker, then enqueues at a fixed rate and records receipt-to-stored latency. */
async function latency(make: () => Runner): Promise<{ name: string; p50: number; p99: number; count: number }> {
  const runner = make();
  const samples: number[] = [];
  const total = LATENCY_RATE_PER_SECOND * LATENCY_SECONDS;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await runner.start((receivedAtMs) => {
    samples.push(Date.now() - receivedAtMs);
    if (samples.length === total) done();
  });
  const tickMs = 10;
  const perTick = (LATENCY_RATE_PER_SECOND * tickMs) / 1000;
  const started = Date.now();
  for (let sent = 0; sent < total; ) {
    const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * LATENCY_RATE_PER_SECOND) + perTick);
    const batch: Promise<void>[] = [];
    for (; sent < due; sent += 1) batch.push(runner.enqueue(subjectToken(sent)));
    await Promise.all(batch);
    await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  await finished;
  await runner.stop();
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { name: runner.name, p50: at(0.5), p99: at(0.99), count: samples.length };
}

async function main(): Promise<void> {
  const { child, tokenUrl } = await startStub();
  const redis = testRedis();
  const prefix = `bench-exchange-${randomBytes(3).toString('hex')}`;
  // BENCH_ONLY=broker|naive runs one side alone (for profiling).
  const only = process.env.BENCH_ONLY;
  const runners = [
    { side: 'naive', make: () => naiveRunner(prefix, tokenUrl) },
    { side: 'broker', make: () => brokerRunner(prefix, tokenUrl) },
  ].filter((r) => !only || r.side === only).map((r) => r.make);
  try {
    process.stdout.write(`bench:exchange N=${N} concurrency=${CONCURRENCY} rounds=${ROUNDS} node=${process.version}\n`);
    const best = new Map<string, number>();
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const make of runners) {
        const r = await drain(make, redis);
        best.set(r.name, Math.max(best.get(r.name) ?? 0, r.perSecond));
        process.stdout.write(`round ${round} ${r.name.padEnd(15)} ${r.perSecond.toFixed(0)} exchanges/s, ${r.cpuUsPerJob.toFixed(0)} µs of worker-process CPU per job, ${r.redisUsPerJob.toFixed(0)} µs of Redis CPU per job\n`);
        await cleanupPrefix(redis, prefix);
      }
    }
    if (!only) {
      const ratio = best.get('broker')! / best.get('naive baseline')!;
      process.stdout.write(`best: broker ${best.get('broker')!.toFixed(0)}/s, naive ${best.get('naive baseline')!.toFixed(0)}/s, ratio ${ratio.toFixed(2)}x (goal >= 1.00x)\n`);
    }
    for (const make of runners) {
      const r = await latency(make);
      process.stdout.write(`latency at ${LATENCY_RATE_PER_SECOND}/s ${r.name.padEnd(15)} p50 ${r.p50} ms  p99 ${r.p99} ms  (n=${r.count})\n`);
      await cleanupPrefix(redis, prefix);
    }
  } finally {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    child.kill('SIGTERM');
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
