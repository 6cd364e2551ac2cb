/**
 * `npm run bench:refresh [-- --sizes 10000,100000,1000000]`: the refresh scheduler's cost against the
 * number of stored users, and Redis memory per stored user (issue 3).
 *
 * Runs against a dedicated, throw-away redis-server on 127.0.0.1:6390 (`--save "" --appendonly no`),
 * started and stopped here, so the shared Redis is never bloated. For each size:
 *   1. seeds N users through the real `TokenStore.save` (the same Lua script, encryption, token-set layout and
 *      metadata as production; many saves in flight so ioredis pipelines them), each with a synthetic
 *      but realistic token set: an RS256-shaped access JWT of ~1.3 KB and an HS512-shaped offline
 *      refresh JWT of ~0.8 KB, per-user claims and random signatures (not compressible junk), access
 *      lifetimes spread so the due times cover the next hour;
 *   2. times scheduler ticks (`runTick`: claim-due-1.lua + addBulk of the refresh jobs) that each find
 *      exactly 1,000 due users (the clock is set to the 1,000th due time), median of 5;
 *   3. measures memory per user: `INFO used_memory` delta over the seeding / N, and `MEMORY USAGE`
 *      of 1,000 sampled users' keys plus their share of the due index and username hash, against the
 *      raw token bytes (access + refresh token lengths).
 * Goals: tick(1M) ≤ 1.5 × tick(10k); memory/user ≤ 1.1 × raw token bytes + 300 B.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { KeyRing } from '../src/shared/crypto.js';
import type { TokenResponse } from '../src/shared/iam-outcome.js';
import { REFRESH_QUEUE } from '../src/shared/job-contract.js';
import { scripts } from '../src/shared/scripts.js';
import { TokenStore } from '../src/shared/token-store.js';
import { runTick } from '../src/worker/scheduler.js';

const PORT = 6390;
const sizesArg = process.argv.indexOf('--sizes');
const SIZES = sizesArg >= 0 ? process.argv[sizesArg + 1].split(',').map(Number) : [10_000, 100_000, 1_000_000];
const TICK_DUE = 1000;
const TICK_RUNS = 9;
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 2000);
const PREFIX = 'bench-refresh';
const ISSUER = 'https://iam.example.org/realms/platform';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const sig = (bytes: number) => randomBytes(bytes).toString('base64url');
/** A JOSE header as Keycloak writes it (Jackson's spacing around two of the colons). */
const keycloakHeader = (alg: string, kid: string) => Buffer.from(`{"alg":"${alg}","typ" : "JWT","kid" : "${kid}"}`).toString('base64url');

/** A Keycloak-like token set for one user (random ids and signatures; plausible claims). */
function tokenSet(i: number, nowMs: number): { userId: string; username: string; tokens: TokenResponse } {
  const userId = randomUUID();
  const username = `user${i}.${randomBytes(3).toString('hex')}`;
  const sid = randomUUID();
  const iat = Math.floor(nowMs / 1000);
  // Access lifetimes of 5 to 65 minutes: due times (expiry − skew − jitter) spread over an hour.
  const expiresIn = 300 + Math.floor(Math.random() * 3600);
  const access = [
    keycloakHeader('RS256', randomBytes(32).toString('base64url')),
    b64({
      exp: iat + expiresIn, iat, auth_time: iat - 120, jti: `onrtac:${randomUUID()}`, iss: ISSUER,
      aud: ['processing-api', 'account'], sub: userId, typ: 'Bearer', azp: 'tokex-worker', sid,
      acr: '1', 'allowed-origins': ['https://portal.example.org'],
      realm_access: { roles: ['offline_access', 'uma_authorization', 'default-roles-platform'] },
      resource_access: { account: { roles: ['manage-account', 'view-profile'] } },
      scope: 'openid profile email offline_access', email_verified: true,
      name: `User ${i}`, preferred_username: username, given_name: 'User', family_name: String(i),
      email: `${username}@example.org`,
    }),
    sig(256),
  ].join('.');
  const refresh = [
    keycloakHeader('HS512', randomUUID()),
    b64({
      iat, jti: randomUUID(), iss: ISSUER, aud: ISSUER, sub: userId, typ: 'Offline', azp: 'tokex-worker',
      sid, scope: 'openid profile email offline_access', nonce: randomBytes(16).toString('base64url'),
    }),
    sig(64),
  ].join('.');
  return {
    userId, username,
    tokens: { accessToken: access, refreshToken: refresh, expiresInSeconds: expiresIn, refreshExpiresInSeconds: 0, scope: 'openid profile email offline_access', tokenType: 'Bearer' },
  };
}

async function startRedis(): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const probe = new Redis(PORT, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // refused while the server starts
  for (let i = 0; i < 100; i += 1) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return child;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill();
  throw new Error(`redis-server did not start on port ${PORT}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const usedMemory = async (redis: Redis) => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

interface SizeResult {
  users: number; seedS: number; tickMs: number; tickMinMs: number; claimMs: number; ticks: number[];
  rawBytes: number; perUserInfo: number; perUserSampled: number;
}

async function measure(redis: Redis, users: number): Promise<SizeResult> {
  await redis.flushall();
  const memBefore = await usedMemory(redis);
  const store = new TokenStore({ redis, prefix: PREFIX, keyRing: KeyRing.parse(KeyRing.generateSpec('bench')) });
  const nowMs = Date.now();
  let rawTotal = 0;
  const sample: string[] = [];
  const seedStart = performance.now();
  for (let i = 0; i < users; i += IN_FLIGHT) {
    const batch = [];
    for (let j = i; j < Math.min(users, i + IN_FLIGHT); j += 1) {
      const { userId, username, tokens } = tokenSet(j, nowMs);
      rawTotal += tokens.accessToken.length + (tokens.refreshToken?.length ?? 0);
      if (j % Math.max(1, Math.floor(users / 1000)) === 0) sample.push(userId);
      batch.push(store.save({ userId, tokens, issuedAtMs: nowMs, username }));
    }
    await Promise.all(batch);
  }
  const seedS = (performance.now() - seedStart) / 1000;
  const perUserInfo = ((await usedMemory(redis)) - memBefore) / users;

  // MEMORY USAGE: the user's own keys, plus its share of the shared due index and username hash.
  const mem = async (key: string) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) || 0;
  let own = 0;
  for (const userId of sample) own += (await mem(store.keys.tokens(userId))) + (await mem(store.keys.meta(userId)));
  const shared = ((await mem(store.keys.due)) + (await mem(store.keys.usernames))) / users;
  const perUserSampled = own / sample.length + shared;

  // Ticks that find exactly 1,000 due users each: the clock is the 1,000th earliest due time.
  const queue = new Queue(REFRESH_QUEUE, { connection: redis, prefix: PREFIX });
  const ticks: number[] = [];
  for (let run = 0; run < TICK_RUNS; run += 1) {
    const [, score] = await redis.zrange(store.keys.due, TICK_DUE - 1, TICK_DUE - 1, 'WITHSCORES');
    const started = performance.now();
    const { claimed } = await runTick({ redis, keys: store.keys, refreshQueue: queue, nowMs: Number(score), maxPerTick: TICK_DUE, leaseMs: 24 * 3600_000 });
    ticks.push(performance.now() - started);
    if (claimed !== TICK_DUE) throw new Error(`tick claimed ${claimed}, expected ${TICK_DUE}`);
  }
  // The due-index part alone (claim-due-1.lua finding 1,000), without the BullMQ adds.
  const claims: number[] = [];
  for (let run = 0; run < TICK_RUNS; run += 1) {
    const [, score] = await redis.zrange(store.keys.due, TICK_DUE - 1, TICK_DUE - 1, 'WITHSCORES');
    const started = performance.now();
    await scripts.claimDue.run(redis, [store.keys.due], [score, TICK_DUE, Date.now() + 24 * 3600_000]);
    claims.push(performance.now() - started);
  }
  await queue.close();
  return {
    users, seedS, tickMs: median(ticks), tickMinMs: Math.min(...ticks), claimMs: median(claims), ticks,
    rawBytes: rawTotal / users, perUserInfo, perUserSampled,
  };
}

async function main(): Promise<void> {
  const server = await startRedis();
  // Auto-pipelining: the saves in flight leave in few socket writes (the seeding is client-CPU bound).
  const redis = new Redis(PORT, '127.0.0.1', { maxRetriesPerRequest: null, enableAutoPipelining: true });
  const results: SizeResult[] = [];
  try {
    for (const size of SIZES) {
      const r = await measure(redis, size);
      results.push(r);
      console.log(
        `${String(size).padStart(9)} users: seeded in ${r.seedS.toFixed(1)} s (${Math.round(size / r.seedS)}/s); `
        + `tick finding 1,000 due: median ${r.tickMs.toFixed(1)} ms, min ${r.tickMinMs.toFixed(1)} ms [${r.ticks.map((t) => t.toFixed(0)).join(', ')}] `
        + `(due-index claim alone: median ${r.claimMs.toFixed(2)} ms); `
        + `memory/user: ${r.perUserInfo.toFixed(0)} B (INFO delta), ${r.perUserSampled.toFixed(0)} B (MEMORY USAGE sample); `
        + `raw tokens ${r.rawBytes.toFixed(0)} B; goal ≤ ${(1.1 * r.rawBytes + 300).toFixed(0)} B`,
      );
    }
  } finally {
    await redis.flushall().catch(() => undefined);
    redis.disconnect();
    server.kill('SIGTERM');
  }
  const first = results[0];
  const last = results[results.length - 1];
  if (first && last && first !== last) {
    const ratio = last.tickMs / first.tickMs;
    console.log(`tick ratio ${last.users}/${first.users}: median ${ratio.toFixed(2)}×, min ${(last.tickMinMs / first.tickMinMs).toFixed(2)}× (goal ≤ 1.5×) ${ratio <= 1.5 ? 'MET' : 'NOT MET'}`);
  }
  for (const r of results) {
    const goal = 1.1 * r.rawBytes + 300;
    const worst = Math.max(r.perUserInfo, r.perUserSampled);
    console.log(`memory at ${r.users}: ${worst.toFixed(0)} B/user vs goal ${goal.toFixed(0)} B: ${worst <= goal ? 'MET' : 'NOT MET'}`);
  }
}

await main();
