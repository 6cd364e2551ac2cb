import swagger from '@fastify/swagger';
import { Queue, QueueEvents } from 'bullmq';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { RedisClient } from '../../shared/redis.js';
import type { BrokerContext } from '../../shared/context.js';
import { EXCHANGE_QUEUE, REFRESH_QUEUE } from '../../shared/job-contract.js';
import { createFastFailConnection, createWorkerConnection, waitUntilReady } from '../../shared/redis.js';
import { TokenProducer } from '../token-producer.js';
import { registerAdminUi } from './admin.js';
import { ApiKeyAuth } from './auth.js';
import { errorBodySchema, handleError, sendError } from './errors.js';
import { registerExchangeRoutes } from './routes/exchanges.js';
import { registerOpsRoutes } from './routes/ops.js';
import { registerUserRoutes } from './routes/users.js';
import { withinMs } from '../../shared/timing.js';

/** Largest request body accepted, in bytes (a 16 KiB subject token plus room for JSON). */
export const BODY_LIMIT_BYTES = 32 * 1024;

/** How long closing waits for the queues before dropping their connections. */
const CLOSE_TIMEOUT_MS = 2000;

/** Options of {@link buildHttpApi}; unset fields come from `ctx.config.http`. */
export interface HttpApiOptions {
  host?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  /** Mount Bull Board at /admin/queues. */
  adminUi?: boolean;
}

/** What the routes share. */
export interface HttpApiDeps {
  ctx: BrokerContext;
  producer: TokenProducer;
  auth: ApiKeyAuth;
  /** Read access to the exchange queue (job states, dashboard, readiness). */
  exchangeQueue: Queue;
  refreshQueue: Queue;
  /** One QueueEvents for the whole server: every `?wait=` request listens on it. */
  exchangeEvents: QueueEvents;
  eventsConnection: RedisClient;
  /** Resolves when the server starts closing, so long-polls answer at once. */
  closing: Promise<void>;
}

/** A built (not yet listening) HTTP API. */
export interface HttpApi {
  app: FastifyInstance;
  deps: HttpApiDeps;
  /** Starts listening; resolves with the base URL, e.g. `http://127.0.0.1:8080`. */
  listen(): Promise<string>;
  /** Stops accepting requests, answers pending long-polls, then closes its queues and connection. */
  close(): Promise<void>;
}

/**
 * Builds the producer HTTP API (docs/http-api.md): `/v1/exchanges`, `/v1/users`, health, readiness,
 * metrics, the OpenAPI document and the dashboard. Throws `config_invalid` when no API key is
 * configured and PRODUCER_AUTH is not `none`, or when IAM_REVOCATION_URL is set without IAM client
 * credentials.
 */
export async function buildHttpApi(ctx: BrokerContext, options: HttpApiOptions = {}): Promise<HttpApi> {
  const { config } = ctx;
  const auth = new ApiKeyAuth(config.http.apiKeys, config.http.auth);
  if (config.iam.revocationUrl) ctx.iam(); // fail at start, not at the first DELETE
  const logger = ctx.logger.child({ component: 'http' }, {
    // Bodies and headers are never logged; these keep a stray `req` object down to safe fields.
    serializers: {
      req: (req: { method?: string; routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    redact: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
  });
  if (auth.mode === 'none') logger.warn('PRODUCER_AUTH=none: the HTTP API and dashboard accept requests without an API key');

  // Enqueues get a connection of their own with auto-pipelining: the commands of requests handled in
  // the same event-loop turn leave in one socket write (~12% less CPU per request, BENCHMARKS.md).
  const enqueueConnection = createFastFailConnection(config.redis, { enableAutoPipelining: true, connectionName: 'tokex-http-enqueue' });
  ctx.metrics.watchRedis('enqueue', enqueueConnection);
  const producer = new TokenProducer({
    redis: enqueueConnection,
    prefix: config.prefix,
    keyRing: config.keyRing,
    defaultDeadlineSeconds: config.exchange.defaultDeadlineSeconds,
    eventsMaxLen: config.retention.eventsMaxLen,
  });
  const exchangeQueue = new Queue(EXCHANGE_QUEUE, { connection: ctx.clientConnection, prefix: config.prefix });
  // Each `?wait=` request's Job#waitUntilFinished listens for this queue's 'closing'.
  exchangeQueue.setMaxListeners(0);
  const refreshQueue = new Queue(REFRESH_QUEUE, { connection: ctx.clientConnection, prefix: config.prefix });
  // QueueEvents blocks on XREAD: it needs a connection of its own.
  const eventsConnection = createWorkerConnection(config.redis, { connectionName: 'tokex-http-events' });
  ctx.metrics.watchRedis('events', eventsConnection);
  const exchangeEvents = new QueueEvents(EXCHANGE_QUEUE, { connection: eventsConnection, prefix: config.prefix });
  exchangeEvents.setMaxListeners(0);
  const onQueueError = (err: Error) => logger.debug({ err }, 'queue connection error');
  exchangeQueue.on('error', onQueueError);
  refreshQueue.on('error', onQueueError);
  exchangeEvents.on('error', onQueueError);
  ctx.metrics.setSources({ redis: ctx.clientConnection, keys: ctx.store.keys, queues: [exchangeQueue, refreshQueue] });

  let startClosing!: () => void;
  const closing = new Promise<void>((resolve) => {
    startClosing = resolve;
  });
  const deps: HttpApiDeps = { ctx, producer, auth, exchangeQueue, refreshQueue, exchangeEvents, eventsConnection, closing };

  const app = Fastify({
    loggerInstance: logger as unknown as FastifyBaseLogger,
    // Per-request lines come from our own onResponse hook (debug level), never with bodies or headers.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: 300 },
    return503OnClosing: true,
  });
  // JSON only: text/plain (parsed by default) answers 415 like every other type.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'not_found', 'no such route'));
  app.addSchema(errorBodySchema);
  if (logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug({ method: request.method, route: request.routeOptions.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    });
  }
  app.addHook('preClose', async () => startClosing());

  await app.register(swagger, {
    openapi: {
      info: { title: 'tokex producer API', version: '1', description: 'Hands subject tokens to the token broker; see docs/http-api.md.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An entry of PRODUCER_API_KEYS' } } },
    },
  });
  await app.register(async (scope) => {
    scope.addHook('onRequest', auth.requireKey);
    registerExchangeRoutes(scope, deps);
    registerUserRoutes(scope, deps);
  });
  registerOpsRoutes(app, deps);
  if (options.adminUi ?? config.http.adminUi) await registerAdminUi(app, deps);

  let listening = false;
  return {
    app,
    deps,
    async listen() {
      // Best effort: a fresh connection is not ready for a moment; Redis being down is /readyz's business.
      await Promise.all([ctx.clientConnection, enqueueConnection].map((c) => waitUntilReady(c, CLOSE_TIMEOUT_MS).catch(() => {})));
      const url = await app.listen({ host: options.host ?? config.http.host, port: options.port ?? config.http.port });
      listening = true;
      logger.info({ url: url.replace(/^https?:\/\//, '') }, 'HTTP API listening');
      return url;
    },
    async close() {
      startClosing();
      await app.close();
      // BullMQ's close waits for a connection that may never come while Redis is down: bound it.
      await withinMs(Promise.allSettled([exchangeEvents.close(), exchangeQueue.close(), refreshQueue.close(), producer.close()]), CLOSE_TIMEOUT_MS);
      eventsConnection.disconnect();
      enqueueConnection.disconnect();
      if (listening) logger.info('HTTP API stopped');
    },
  };
}
