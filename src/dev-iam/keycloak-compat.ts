import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KoaContext, Middleware } from 'oidc-provider';
import type { Endpoint, FaultState, StatsCounter } from './faults.js';
import { KC_ROUTES } from './provider-config.js';
import { GRANT_TOKEN_EXCHANGE } from './runtime.js';
import { paramString } from './tokens.js';
import type { DevIamLogger } from './types.js';

const ENDPOINTS: Record<string, Endpoint> = {
  [KC_ROUTES.token]: 'token',
  [KC_ROUTES.introspection]: 'introspection',
  [KC_ROUTES.revocation]: 'revocation',
};

/** Dependencies of {@link keycloakCompat}. */
export interface CompatDeps {
  faults: FaultState;
  stats: StatsCounter;
  /** Introspects a JWT access token (oidc-provider cannot: it does not store JWTs). */
  introspectJwt(token: string): Promise<Record<string, unknown> | undefined>;
  logger?: DevIamLogger;
}

/** Reads a urlencoded body of a call oidc-provider will never see (faulted calls). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > 64 * 1024) break;
    chunks.push(buf);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const UNAUTHORIZED_CLIENT: Record<string, string> = {
  password: 'Client not allowed for direct access grants',
  [GRANT_TOKEN_EXCHANGE]: 'Client not allowed to exchange',
  refresh_token: 'Client not allowed to refresh tokens',
};

/** Rewrites oidc-provider error bodies into Keycloak's codes, statuses and descriptions. */
function rewriteError(ctx: KoaContext, grantType: string | undefined): void {
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (ctx.status < 400 || !body || typeof body.error !== 'string') return;
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  let out: { status: number; error: string; error_description: string } | undefined;

  switch (body.error) {
    case 'invalid_client':
      out = { status: 401, error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' };
      break;
    case 'unsupported_grant_type':
      out = { status: 400, error: 'unsupported_grant_type', error_description: 'Unsupported grant_type' };
      break;
    case 'invalid_request': {
      const missing = /^missing required parameters? (.+)$/.exec(description);
      if (description === 'requested grant type is not allowed for this client') {
        out = {
          status: 400,
          error: 'unauthorized_client',
          error_description: UNAUTHORIZED_CLIENT[grantType ?? ''] ?? 'Client not allowed',
        };
      } else if (missing?.[1]) {
        out = { status: 400, error: 'invalid_request', error_description: `Missing parameter: ${missing[1].replace(/'/g, '')}` };
      } else if (description === 'no client authentication mechanism provided') {
        out = { status: 401, error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' };
      }
      break;
    }
    default:
  }
  if (out) {
    ctx.status = out.status;
    ctx.body = { error: out.error, error_description: out.error_description };
  }
}

function applyFault(ctx: KoaContext, fault: NonNullable<ReturnType<FaultState['take']>>): void {
  ctx.status = fault.status;
  for (const [name, value] of Object.entries(fault.headers)) ctx.set(name, value);
  ctx.set('Cache-Control', 'no-store');
  // An empty string keeps the status (Koa turns a null body into 204).
  ctx.body = fault.body ?? '';
}

/**
 * Koa middleware installed with `provider.use()`: it runs before any of
 * oidc-provider's own middleware. It (a) applies fault switches, (b) makes
 * error and introspection bodies look like Keycloak's, and (c) counts calls.
 */
export function keycloakCompat(deps: CompatDeps): Middleware {
  const { faults, stats } = deps;
  return async (ctx, next) => {
    const endpoint = ctx.method === 'POST' ? ENDPOINTS[ctx.path] : undefined;
    if (!endpoint) return next();

    if (faults.latencyMs > 0) await sleep(faults.latencyMs);

    const fault = faults.take();
    if (fault) {
      const form = await readForm(ctx.req);
      stats.call(endpoint, form.get('grant_type') ?? undefined);
      stats.error(fault.body?.error ?? `http_${fault.status}`);
      applyFault(ctx, fault);
      return undefined;
    }

    await next();

    const grantType = paramString(ctx.oidc?.body?.grant_type);
    stats.call(endpoint, grantType);

    if (endpoint === 'introspection' && ctx.status === 200) {
      const body = ctx.body as { active?: boolean } | undefined;
      const token = paramString(ctx.oidc?.params.token);
      const client = ctx.oidc?.client;
      if (body?.active === false && token && token.split('.').length === 3
        && client && client.clientAuthMethod !== 'none') {
        const result = await deps.introspectJwt(token);
        if (result) ctx.body = result;
      }
    }

    rewriteError(ctx, grantType);
    if (ctx.status >= 400) {
      const error = (ctx.body as { error?: unknown } | undefined)?.error;
      const code = typeof error === 'string' ? error : `http_${ctx.status}`;
      stats.error(code);
      if (ctx.status >= 500) deps.logger?.warn({ endpoint, grantType, status: ctx.status, error: code }, 'dev-iam error');
    }
    return undefined;
  };
}
