import type { Command } from '../cli.js';
import { ROLE_STARTERS, startBroker, type RoleName } from '../broker.js';
import { startDevIam } from '../dev-iam/index.js';
import { TokenProducer } from '../producer/token-producer.js';
import { loadConfig, readEnvironment } from '../shared/config.js';
import { KeyRing } from '../shared/crypto.js';
import { TokexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { createFastFailConnection, deleteKeysUnder, waitUntilReady } from '../shared/redis.js';
import type { TokenStore } from '../shared/token-store.js';
import { sleep } from '../shared/timing.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

/**
 * `tokex demo`: the whole path on one machine. Starts the development IAM on loopback, runs the
 * broker against REDIS_URL under the prefix `tokex-demo`, logs a demo user in, enqueues the user's
 * token and prints the stored token set's metadata (never a token).
 */
export const command: Command = {
  summary: 'Run the main path end to end against a development IAM and the Redis at REDIS_URL; prints metadata, never tokens.',
  usage: 'tokex demo   (env: REDIS_URL, default redis://127.0.0.1:6379; TOKEN_ENCRYPTION_KEYS optional here)',
  async run() {
    const env: Record<string, string | undefined> = { ...readEnvironment(), TOKEX_PREFIX: 'tokex-demo' };
    const throwAwayKey = !env.TOKEN_ENCRYPTION_KEYS;
    if (throwAwayKey) {
      env.TOKEN_ENCRYPTION_KEYS = KeyRing.generateSpec('demo');
      say('No TOKEN_ENCRYPTION_KEYS set: using a throw-away key for this demo (run `tokex keygen` for a real one).');
    }
    const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    await checkRedis(redisUrl);

    const iam = await startDevIam({ mode: 'v1' });
    say(`Development IAM (Keycloak-like, V1 token exchange) at ${iam.issuer}`);
    Object.assign(env, {
      IAM_TOKEN_URL: iam.tokenUrl,
      IAM_CLIENT_ID: iam.workerClient.clientId,
      IAM_CLIENT_SECRET: iam.workerClient.clientSecret,
      IAM_REVOCATION_URL: iam.revocationUrl,
      LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
    });
    const config = loadConfig({ env, need: ['iam'] });
    const logger = createLogger({ level: config.logLevel });
    const roles = (['worker', 'refresh', 'scheduler'] as string[]).filter((r) => r in ROLE_STARTERS) as RoleName[];
    const broker = await startBroker(config, logger, roles);
    const producer = new TokenProducer({ redis: config.redis, prefix: config.prefix, keyRing: config.keyRing });
    try {
      say(`Broker running (roles: ${roles.join(', ')}) on ${redisUrl}, prefix ${config.prefix}`);
      const subjectToken = await passwordLogin(iam.tokenUrl, 'alice', 'alice-password');
      say('Demo user "alice" logged in at the frontend client; enqueueing her access token for exchange...');
      const started = Date.now();
      const { jobId } = await producer.enqueueExchange({ subjectToken });
      say(`Enqueued job ${jobId}`);
      const userId = await waitForStored(broker.context.store, 'alice', 15_000);
      const status = await broker.context.store.status(userId);
      say(`Exchanged and stored in ${Date.now() - started} ms. Stored metadata for user ${userId}:`);
      say(JSON.stringify(status, null, 2));
      say(`\nTokens are in Redis under ${config.prefix}:tok:${userId} (AES-256-GCM) with metadata in ${config.prefix}:meta:${userId}.`);
      if (throwAwayKey) say(`They were encrypted with the throw-away key, so the demo deletes every ${config.prefix}:* key now.`);
      return 0;
    } finally {
      await producer.close();
      if (throwAwayKey) await deleteKeysUnder(broker.context.clientConnection, config.prefix).catch(() => undefined);
      await broker.close();
      await iam.close();
    }
  },
};

async function checkRedis(url: string): Promise<void> {
  const redis = createFastFailConnection(url, { lazyConnect: false });
  redis.on('error', () => {});
  try {
    await waitUntilReady(redis, 3000);
    await redis.ping();
  } catch {
    throw new TokexError('redis_unavailable', `Redis does not answer at ${url}. Start one (e.g. \`redis-server --daemonize yes --save "" --appendonly no\`) or set REDIS_URL, then run the demo again.`);
  } finally {
    redis.disconnect();
  }
}

async function passwordLogin(tokenUrl: string, username: string, password: string): Promise<string> {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', client_id: 'tokex-frontend', username, password }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!res.ok || !body.access_token) throw new TokexError('iam_unavailable', `demo login failed with HTTP ${res.status}`);
  return body.access_token;
}

async function waitForStored(store: TokenStore, username: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const userId = await store.userIdForUsername(username);
    if (userId && (await store.status(userId))?.state === 'active') return userId;
    await sleep(100);
  }
  throw new TokexError('iam_unavailable', `the exchange did not finish within ${timeoutMs} ms; run with LOG_LEVEL=debug to see why`);
}
