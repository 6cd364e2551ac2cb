import { randomBytes } from 'node:crypto';

/** An unsigned-looking compact JWS with the given claims (for producer validation, never sent to an IAM). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}.${randomBytes(64).toString('base64url')}`;
}

/** Seconds since epoch, offset by `deltaSeconds`. */
export function epochSeconds(deltaSeconds = 0): number {
  return Math.floor(Date.now() / 1000) + deltaSeconds;
}
