/** Shared pieces of the refresh test files (not a test file itself). */
import { randomUUID } from 'node:crypto';
import type { DevIamUser } from '../src/dev-iam/index.js';
import type { Harness } from './helpers/harness.js';
import { eventually } from './helpers/logs.js';

/** `count` extra development-IAM users with fresh subs. */
export function makeUsers(count: number, label = 'u'): DevIamUser[] {
  return Array.from({ length: count }, (_, i) => ({
    username: `${label}${i}-${randomUUID().slice(0, 6)}`,
    password: 'pw',
    sub: randomUUID(),
  }));
}

/** Exchanges a fresh subject token of `sub` through the real producer and exchange worker; resolves when stored. */
export async function exchangeUser(h: Harness, sub: string): Promise<void> {
  const before = (await h.store.status(sub))?.version ?? 0;
  const subjectToken = await h.iam.issueUserToken({ sub });
  await h.producer.enqueueExchange({ subjectToken, userId: sub });
  await eventually(async () => {
    const status = await h.store.status(sub);
    return status !== null && status.version > before && status.state === 'active';
  }, 15_000);
}

/** Seconds-resolution `exp` of a JWT access token, in ms. */
export function jwtExpMs(token: string): number {
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as { exp: number };
  return payload.exp * 1000;
}

/** Entries of the events stream as records. */
export async function events(h: Harness): Promise<Record<string, string>[]> {
  const entries = await h.redis.xrange(h.store.keys.events, '-', '+');
  return entries.map(([, fields]) => {
    const out: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) out[fields[i]] = fields[i + 1];
    return out;
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
