import type { RoleName } from '../../src/broker.js';
import type { DevIam } from '../../src/dev-iam/index.js';
import type { HttpRole } from '../../src/producer/http-role.js';
import { KeyRing } from '../../src/shared/crypto.js';
import { EXCHANGE_QUEUE } from '../../src/shared/job-contract.js';
import { startHarness, type Harness } from './harness.js';

/** The API key every HTTP test uses. */
export const API_KEY = 'test-key-0123456789abcdef';

/** A harness whose broker runs the producer role (HTTP API on a free port). */
export interface ApiHarness extends Harness {
  url: string;
  role: HttpRole;
  /** The TOKEN_ENCRYPTION_KEYS value the broker runs with (for child processes). */
  keySpec: string;
  /** fetch against the API; `auth: false` sends no Authorization header. */
  call(path: string, init?: RequestInit & { auth?: boolean; json?: unknown }): Promise<Response>;
  /** Jobs of every state in the exchange queue. */
  exchangeJobCount(): Promise<number>;
}

/** Starts a harness with the producer role (and `roles` before it), PRODUCER_API_KEYS set. */
export async function startApiHarness(options: {
  roles?: RoleName[];
  env?: Record<string, string>;
  iam?: DevIam;
} = {}): Promise<ApiHarness> {
  const keySpec = KeyRing.generateSpec('http');
  const harness = await startHarness({
    iam: options.iam,
    roles: [...(options.roles ?? []), 'producer'],
    env: { HTTP_PORT: '0', PRODUCER_API_KEYS: `other-key,${API_KEY}`, TOKEN_ENCRYPTION_KEYS: keySpec, ...options.env },
  });
  const role = harness.broker.roles.find((r) => r.name === 'producer') as HttpRole;
  const url = role.url;
  return {
    ...harness,
    url,
    role,
    keySpec,
    call(path, init = {}) {
      const { auth = true, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (auth && !headers.has('authorization')) headers.set('authorization', `Bearer ${API_KEY}`);
      let body = rest.body;
      if (json !== undefined) {
        body = typeof json === 'string' ? json : JSON.stringify(json);
        if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      }
      return fetch(`${url}${path}`, { ...rest, headers, body, redirect: 'manual' });
    },
    async exchangeJobCount() {
      const counts = await role.api.deps.exchangeQueue.getJobCounts();
      return Object.values(counts).reduce((a, b) => a + b, 0);
    },
  };
}

/** A JWT-shaped (unsigned) token with the given claims; the producer only decodes it. */
export function fakeJwt(claims: Record<string, unknown>): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}.${Buffer.from('signature-bytes').toString('base64url')}`;
}

/** Exchange queue name, re-exported for assertions. */
export { EXCHANGE_QUEUE };
