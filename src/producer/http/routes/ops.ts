import type { FastifyInstance } from 'fastify';
import type { HttpApiDeps } from '../server.js';
import { TIMED_OUT, withinMs } from '../../../shared/timing.js';

/** How long readiness waits for Redis before saying no. */
const READY_TIMEOUT_MS = 1000;

/** Unauthenticated operations routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`. */
export function registerOpsRoutes(app: FastifyInstance, deps: HttpApiDeps): void {
  const { ctx, exchangeQueue, refreshQueue, eventsConnection } = deps;

  app.get('/healthz', {
    schema: { summary: 'Liveness: the process is up', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: {
      summary: 'Readiness: Redis answers and both queues are reachable',
      response: {
        '2xx': readyBody, 503: readyBody,
      },
    },
  }, async (_request, reply) => {
    const checks: Record<string, string> = {};
    const run = async (name: string, check: () => Promise<unknown>) => {
      try {
        if ((await withinMs(check(), READY_TIMEOUT_MS)) === TIMED_OUT) throw new Error(`no answer within ${READY_TIMEOUT_MS} ms`);
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = (err as Error).message.slice(0, 200);
      }
    };
    await Promise.all([
      run('redis', () => ctx.clientConnection.ping()),
      run('exchangeQueue', () => exchangeQueue.getJobCounts('waiting')),
      run('refreshQueue', () => refreshQueue.getJobCounts('waiting')),
      run('queueEvents', async () => {
        if (eventsConnection.status !== 'ready') throw new Error(`events connection ${eventsConnection.status}`);
      }),
    ]);
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });

  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)' } }, async (_request, reply) => {
    const { contentType, body } = await ctx.metrics.render();
    return reply.type(contentType).send(body);
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

const readyBody = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    checks: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

