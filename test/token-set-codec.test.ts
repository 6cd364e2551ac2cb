import { randomUUID } from 'node:crypto';
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

  it('stores a Keycloak-like JWT pair in well under its text size', () => {
    const claims = (typ: string) => ({
      exp: epochSeconds(300), iat: epochSeconds(), jti: randomUUID(), iss: 'https://iam.example.org/realms/production', sub: randomUUID(), typ,
      azp: 'tokex-worker', sid: randomUUID(), scope: 'openid profile email offline_access', preferred_username: 'alice', email: 'alice@example.org',
    });
    const tokens = { accessToken: fakeJwt(claims('Bearer')), refreshToken: fakeJwt(claims('Offline')) };
    const textSize = tokens.accessToken.length + tokens.refreshToken.length;
    expect(encodeTokenSet(tokens).length).toBeLessThan(textSize * 0.7);
  });

  it('refuses another format, truncation and trailing bytes', () => {
    const encoded = encodeTokenSet({ accessToken: jwt, refreshToken: jwt });
    expect(() => decodeTokenSet(Buffer.concat([Buffer.from([1]), encoded.subarray(1)]))).toThrow(/format/);
    expect(() => decodeTokenSet(encoded.subarray(0, encoded.length - 3))).toThrow(/truncated/);
    expect(() => decodeTokenSet(Buffer.concat([encoded, Buffer.from([0])]))).toThrow(/malformed/);
  });
});
