import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_COOKIE, ADMIN_COOKIE_TTL_MS, ApiKeyAuth, readCookie } from './auth.js';
import { sendError } from './errors.js';
import type { HttpApiDeps } from './server.js';

/** Where the dashboard is mounted. */
export const ADMIN_BASE_PATH = '/admin/queues';

/**
 * Mounts Bull Board (read-only) for the exchange and refresh queues at {@link ADMIN_BASE_PATH},
 * behind the API key. A browser cannot send a bearer header when navigating, so besides
 * `Authorization: Bearer <key>` the dashboard accepts a one-time handoff: `GET /admin/queues?key=<key>`
 * sets an HttpOnly, SameSite=Strict cookie (an expiring HMAC, not the key) and redirects to the
 * same page without the key in the address.
 */
export async function registerAdminUi(app: FastifyInstance, deps: HttpApiDeps): Promise<void> {
  const { auth, exchangeQueue, refreshQueue } = deps;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_BASE_PATH);
  // Read-only: the dashboard must not add jobs (they would bypass the producer's encryption) or delete them.
  const adapterOptions = { readOnlyMode: true, displayName: undefined } as const;
  createBullBoard({
    queues: [
      new BullMQAdapter(exchangeQueue as never, { ...adapterOptions, description: 'Subject tokens waiting to be exchanged' }),
      new BullMQAdapter(refreshQueue as never, { ...adapterOptions, description: 'Per-user token refreshes' }),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'tokex queues' } },
  });

  await app.register(async (scope) => {
    scope.addHook('onRequest', (request, reply) => adminGate(auth, request, reply));
    await scope.register(serverAdapter.registerPlugin() as never);
  }, { prefix: ADMIN_BASE_PATH });
}

async function adminGate(auth: ApiKeyAuth, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (auth.mode === 'none') return;
  const queryKey = (request.query as { key?: unknown } | undefined)?.key;
  if (typeof queryKey === 'string') {
    if (!auth.isValidKey(queryKey)) {
      await sendError(reply, 'unauthorized', 'the key is not valid');
      return;
    }
    const secure = request.protocol === 'https' ? '; Secure' : '';
    reply.header(
      'set-cookie',
      `${ADMIN_COOKIE}=${auth.issueAdminCookie(queryKey)}; Path=${ADMIN_BASE_PATH}; Max-Age=${ADMIN_COOKIE_TTL_MS / 1000}; HttpOnly; SameSite=Strict${secure}`,
    );
    // Drop the key from the address bar and history.
    const path = request.url.split('?')[0] ?? ADMIN_BASE_PATH;
    await reply.code(303).header('location', path).header('cache-control', 'no-store').send();
    return;
  }
  if (auth.isValidKey(ApiKeyAuth.bearer(request))) return;
  if (auth.isValidAdminCookie(readCookie(request.headers.cookie, ADMIN_COOKIE))) return;
  await sendError(reply, 'unauthorized', `open ${ADMIN_BASE_PATH}?key=<API key> once, or send Authorization: Bearer <API key>`);
}
