import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FaultState } from './faults.js';
import type { DevIamStats } from './types.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A plain node HTTP server whose handler is attached after listening. */
export interface HttpHost {
  readonly server: Server;
  readonly port: number;
  /** Mounts the provider's Koa callback under the realm prefix. */
  mount(prefix: string, handler: Handler): void;
  /** Serves `/dev/faults` and `/dev/stats`. */
  enableControlApi(faults: FaultState, stats: () => DevIamStats): void;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const text = Buffer.concat(chunks).toString('utf8');
  const parsed: unknown = text ? JSON.parse(text) : {};
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object');
  return parsed as Record<string, unknown>;
}

/** Applies a `POST /dev/faults` body to the fault switches. */
export function applyFaultCommand(faults: FaultState, cmd: Record<string, unknown>): void {
  if (cmd.reset === true) faults.reset();
  if (typeof cmd.failNext === 'number') {
    faults.failNext(cmd.failNext, typeof cmd.status === 'number' ? cmd.status : undefined);
  }
  if (typeof cmd.rateLimitNext === 'number') {
    faults.rateLimitNext(cmd.rateLimitNext, cmd.retryAfter === undefined ? '1' : String(cmd.retryAfter));
  }
  if (typeof cmd.latencyMs === 'number') faults.setLatencyMs(cmd.latencyMs);
}

/**
 * Listens first (so the issuer can contain the real port), then routes
 * `<prefix>/*` to the provider. The prefix is stripped from `req.url` and
 * kept in `req.originalUrl`, which is how oidc-provider detects its mount
 * path (as under express `app.use(prefix, provider.callback())`).
 */
export async function listenHttp(host: string, port: number): Promise<HttpHost> {
  let mounted: { prefix: string; handler: Handler } | undefined;
  let control: { faults: FaultState; stats: () => DevIamStats } | undefined;

  const onControl = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (!control) return sendJson(res, 404, { error: 'not_found' });
    if (req.method === 'GET' && path === '/dev/stats') return sendJson(res, 200, control.stats());
    if (req.method === 'POST' && path === '/dev/faults') {
      try {
        applyFaultCommand(control.faults, await readJson(req));
        return sendJson(res, 200, { ok: true, stats: control.stats() });
      } catch (err) {
        return sendJson(res, 400, { error: 'invalid_request', error_description: (err as Error).message });
      }
    }
    return sendJson(res, 404, { error: 'not_found' });
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (path.startsWith('/dev/')) {
      onControl(req, res, path).catch(() => sendJson(res, 500, { error: 'server_error' }));
      return;
    }
    if (mounted && (path === mounted.prefix || path.startsWith(`${mounted.prefix}/`))) {
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
      req.url = url.slice(mounted.prefix.length) || '/';
      mounted.handler(req, res);
      return;
    }
    sendJson(res, 404, { error: 'Realm does not exist' });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    server,
    port: (server.address() as AddressInfo).port,
    mount(prefix, handler) {
      mounted = { prefix, handler };
    },
    enableControlApi(faults, stats) {
      control = { faults, stats };
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // Keep-alive connections from fetch would otherwise hold close() open.
      server.closeAllConnections();
    }),
  };
}
