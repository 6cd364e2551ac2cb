import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_USERS, startDevIam, type DevIam } from '../src/dev-iam/index.js';
import { TokenProducer } from '../src/producer/token-producer.js';
import { KeyRing } from '../src/shared/crypto.js';
import { IamClient } from '../src/shared/iam-client.js';
import { createFastFailConnection, createWorkerConnection } from '../src/shared/redis.js';
import { TokenStore } from '../src/shared/token-store.js';
import { ExchangeWorker } from '../src/worker/exchange-worker.js';
import { captureLogger, eventually } from './helpers/logs.js';
import { cleanupPrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './helpers/redis.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

let iam: DevIam;
let proxy: TcpProxy;
const redis = testRedis();
const prefix = uniquePrefix('blip');

beforeAll(async () => {
  iam = await startDevIam();
  proxy = await startTcpProxy();
});
afterAll(async () => {
  await proxy.close();
  await iam.close();
  await cleanupPrefix(redis, prefix);
  redis.disconnect();
});

it('stores the tokens even when Redis drops out right after the IAM answered', async () => {
  const keyRing = KeyRing.parse(KeyRing.generateSpec('blip'));
  const logs = captureLogger();
  // Only the token store goes through the proxy: the queue keeps working, the write is what fails.
  const storeRedis = createFastFailConnection(proxy.url);
  storeRedis.on('error', () => {});
  const workerRedis = createWorkerConnection(TEST_REDIS_URL);
  const worker = new ExchangeWorker({
    connection: workerRedis, prefix, keyRing, logger: logs.logger,
    iam: new IamClient({ tokenUrl: iam.tokenUrl, ...iam.workerClient, scope: 'offline_access' }),
    store: new TokenStore({ redis: storeRedis, prefix, keyRing }),
  });
  worker.start();
  const producer = new TokenProducer({ redis: TEST_REDIS_URL, prefix, keyRing });
  const [alice] = DEFAULT_USERS;
  const store = () => new TokenStore({ redis, prefix, keyRing });
  try {
    iam.faults.setLatencyMs(1000);
    const calls = iam.stats.exchange;
    await producer.enqueueExchange({ subjectToken: await iam.issueUserToken({ sub: alice.sub }), userId: alice.sub });
    // The job is at the IAM (which answers after 1 s): take Redis away from the store now.
    await eventually(async () => (await redis.llen(`${prefix}:exchange:active`)) > 0, 10_000, 10);
    proxy.cut();
    expect(await store().status(alice.sub)).toBeNull();
    await eventually(() => logs.text().includes('retrying with the tokens held in memory'), 10_000);
    proxy.restore();
    await eventually(async () => (await store().status(alice.sub))?.state === 'active', 15_000);
    expect(iam.stats.exchange).toBe(calls + 1); // stored from memory, not by exchanging again
  } finally {
    iam.faults.setLatencyMs(0);
    await worker.close();
    await producer.close();
    storeRedis.disconnect();
    workerRedis.disconnect();
  }
});
