import { randomBytes, randomUUID } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeTokenSet, encodeTokenSet, TOKEN_SET_FORMAT } from '../src/shared/token-set-codec.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

describe('token set plaintext layout', () => {
  const jwt = fakeJwt({ sub: 'u-1', exp: epochSeconds(300), preferred_username: 'ünïcode' });

  it.each([
    ['a JWT pair', { accessToken: jwt, refreshToken: fakeJwt({ typ: 'Offline', exp: 0 }) }],
    ['no refresh token', { accessToken: jwt }],
    ['opaque tokens', { accessToken: 'opaque-ä-token', refreshToken: 'not.base64!.x' }],
    ['padded or non-canonical base64url', { accessToken: 'YQ==.YQ==.YQ==', refreshToken: 'YR.YQ.YQ' }],
    ['empty segments and a JWE', { accessToken: 'eyJhbGciOiJub25lIn0.e30.', refreshToken: 'a.b.c.d.e' }],
    ['six segments', { accessToken: 'a.b.c.d.e.f' }],
  ])('round-trips %s exactly', (_name, tokens) => {
    const encoded = encodeTokenSet(tokens);
    expect(encoded[0]).toBe(TOKEN_SET_FORMAT);
    expect(decodeTokenSet(encoded)).toEqual(tokens);
  });

  it('stores a Keycloak-like token pair in under half its text size (README)', () => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const sub = randomUUID();
    const common = { iat: epochSeconds(), jti: randomUUID(), iss: 'https://iam.example.org/realms/production', sub, azp: 'tokex-worker', sid: randomUUID(), scope: 'openid profile email offline_access' };
    const access = { ...common, exp: epochSeconds(300), typ: 'Bearer', aud: ['tokex-worker', 'account'], realm_access: { roles: ['offline_access', 'uma_authorization'] }, preferred_username: 'alice', email: 'alice@example.org', email_verified: true };
    const tokens = {
      accessToken: `${enc({ alg: 'RS256', typ: 'JWT', kid: randomUUID() })}.${enc(access)}.${randomBytes(256).toString('base64url')}`,
      refreshToken: `${enc({ alg: 'HS512', typ: 'JWT', kid: randomUUID() })}.${enc({ ...common, exp: 0, typ: 'Offline' })}.${randomBytes(64).toString('base64url')}`,
    };
    const textSize = tokens.accessToken.length + tokens.refreshToken.length;
    expect(encodeTokenSet(tokens).length).toBeLessThan(textSize * 0.5);
  });

  it('still reads format 1 (raw DEFLATE of the token JSON), with or without a refresh token', () => {
    for (const tokens of [{ accessToken: jwt, refreshToken: 'opaque' }, { accessToken: jwt }]) {
      expect(decodeTokenSet(deflateRawSync(Buffer.from(JSON.stringify(tokens))))).toEqual(tokens);
    }
  });

  it('throws decrypt_failed on truncation, trailing bytes, unknown places and garbage', () => {
    const encoded = encodeTokenSet({ accessToken: jwt, refreshToken: jwt });
    const garbage = [
      encoded.subarray(0, encoded.length - 3),
      Buffer.concat([encoded, Buffer.from([0])]),
      Buffer.from([TOKEN_SET_FORMAT, 0, 0, 0, 200]),
      Buffer.from('not a token set'),
    ];
    for (const data of garbage) expect(() => decodeTokenSet(data)).toThrow(expect.objectContaining({ code: 'decrypt_failed' }));
  });
});
