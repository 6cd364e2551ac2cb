import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeTokenSet, encodeTokenSet, JSON_DICTIONARY, TOKEN_SET_FORMAT } from '../src/shared/token-set-codec.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

const b64 = (text: string) => Buffer.from(text, 'latin1').toString('base64url');

describe('token set plaintext layout', () => {
  const jwt = fakeJwt({ sub: 'u-1', exp: epochSeconds(300), preferred_username: 'ünïcode' });

  it.each([
    ['a JWT pair', { accessToken: jwt, refreshToken: fakeJwt({ typ: 'Offline', exp: 0 }) }],
    ['no refresh token', { accessToken: jwt }],
    ['opaque tokens', { accessToken: 'opaque-ä-token', refreshToken: 'not.base64!.x' }],
    ['padded or non-canonical base64url', { accessToken: 'YQ==.YQ==.YQ==', refreshToken: 'YR.YQ.YQ' }],
    ['empty segments and a JWE', { accessToken: 'eyJhbGciOiJub25lIn0.e30.', refreshToken: 'a.b.c.d.e' }],
    ['six segments', { accessToken: 'a.b.c.d.e.f' }],
    ['JSON segments holding control bytes (stored as they are)', { accessToken: `${b64('{"a":"\x01\x1f"}')}.${b64('{\n"exp":1}')}.c2ln` }],
    ['dictionary entries out of their usual places', { accessToken: `${b64(`{"x":"${JSON_DICTIONARY.join('')}"}`)}.${b64(`{${JSON_DICTIONARY.join(',')}`)}.c2ln` }],
  ])('round-trips %s exactly', (_name, tokens) => {
    const encoded = encodeTokenSet(tokens);
    expect(encoded[0]).toBe(TOKEN_SET_FORMAT);
    expect(decodeTokenSet(encoded)).toEqual(tokens);
  });

  it('stores each dictionary entry of a JSON segment as one byte', () => {
    const claims = `{"x":${JSON_DICTIONARY.join('')}}`;
    const withClaims = (json: string) => encodeTokenSet({ accessToken: `${b64(json)}.c2ln` }).length;
    expect(withClaims(claims)).toBe(withClaims('{"x":}') + JSON_DICTIONARY.length);
  });

  it('uses the dictionary the README documents, 32 ASCII entries', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /The dictionary, entry 0 first[\s\S]*?```json\n([\s\S]*?)```/.exec(readme);
    expect(JSON.parse(block![1])).toEqual(JSON_DICTIONARY);
    expect(JSON_DICTIONARY).toHaveLength(32);
    for (const entry of JSON_DICTIONARY) expect(entry).toMatch(/^[\x20-\x7e]+$/);
  });

  it('stores a Keycloak token pair in under 60 % of its text size (README)', () => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const header = (alg: string) => b64(`{"alg":"${alg}","typ" : "JWT","kid" : "${randomUUID()}"}`); // Keycloak's spacing
    const sub = randomUUID();
    const common = { iat: epochSeconds(), jti: randomUUID(), iss: 'https://iam.example.org/realms/production', sub, azp: 'tokex-worker', sid: randomUUID(), scope: 'openid profile email offline_access' };
    const access = { exp: epochSeconds(300), ...common, typ: 'Bearer', aud: ['tokex-worker', 'account'], realm_access: { roles: ['offline_access', 'uma_authorization'] }, preferred_username: 'alice', email: 'alice@example.org', email_verified: true };
    const tokens = {
      accessToken: `${header('RS256')}.${enc(access)}.${randomBytes(256).toString('base64url')}`,
      refreshToken: `${header('HS512')}.${enc({ exp: 0, ...common, typ: 'Offline' })}.${randomBytes(64).toString('base64url')}`,
    };
    const textSize = tokens.accessToken.length + tokens.refreshToken.length;
    expect(encodeTokenSet(tokens).length).toBeLessThan(textSize * 0.6);
  });

  it('still reads format 2 (JSON segments raw DEFLATE-compressed) and format 1 (raw DEFLATE of the token JSON)', () => {
    // Written by the format-2 encoder for this access token and the refresh token "opaque-refresh".
    const format2 = Buffer.from(
      '020000005563626660606090ae564acc4957b2520a0a36323553d2512aa92c50b252f20a0f51aa05c9cb552b15972629592995ea1a2ae928a556142859199a1b40412d230303032788e0cb2f482c2c4dd52d4a4d2b4a2dce00007369676e6174757265',
      'hex',
    );
    const accessToken = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl';
    expect(decodeTokenSet(format2)).toEqual({ accessToken, refreshToken: 'opaque-refresh' });
    for (const tokens of [{ accessToken: jwt, refreshToken: 'opaque' }, { accessToken: jwt }]) {
      expect(decodeTokenSet(deflateRawSync(Buffer.from(JSON.stringify(tokens))))).toEqual(tokens);
    }
  });

  it('throws decrypt_failed on truncation, trailing bytes, unknown kinds or forms and garbage', () => {
    const encoded = encodeTokenSet({ accessToken: jwt, refreshToken: jwt });
    const garbage = [
      encoded.subarray(0, encoded.length - 3),
      Buffer.concat([encoded, Buffer.from([0])]),
      Buffer.from([TOKEN_SET_FORMAT, 0, 0]), // no access token
      Buffer.from([TOKEN_SET_FORMAT, 7, 0]), // unknown kind
      Buffer.from([TOKEN_SET_FORMAT, 2, 1, 9, 0, 0, 0, 0, 0]), // unknown segment form
      Buffer.from('not a token set'),
    ];
    for (const data of garbage) expect(() => decodeTokenSet(data)).toThrow(expect.objectContaining({ code: 'decrypt_failed' }));
  });
});
