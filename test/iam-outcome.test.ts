import { describe, expect, it } from 'vitest';
import { isTokexError, type TokexErrorCode } from '../src/shared/errors.js';
import { classifyIamResponse, parseRetryAfterMs, type IamCall } from '../src/shared/iam-outcome.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');

interface Case {
  name: string;
  call: IamCall;
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  code: TokexErrorCode;
  retryAfterMs?: number;
}

// The cases of keycloak.md's "Errors and what they mean for a job".
const cases: Case[] = [
  { name: 'expired subject token (invalid_request "Invalid token")', call: 'exchange', status: 400, body: { error: 'invalid_request', error_description: 'Invalid token' }, code: 'subject_token_invalid' },
  { name: 'subject token session gone (invalid_grant)', call: 'exchange', status: 400, body: { error: 'invalid_grant', error_description: 'Session not active' }, code: 'subject_token_invalid' },
  { name: 'client not in audience (403 access_denied)', call: 'exchange', status: 403, body: { error: 'access_denied', error_description: 'Client is not within the token audience' }, code: 'client_misconfigured' },
  { name: 'bad client secret, new Keycloak (401 invalid_client)', call: 'exchange', status: 401, body: { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }, code: 'client_misconfigured' },
  { name: 'bad client secret, old Keycloak (401 unauthorized_client)', call: 'refresh', status: 401, body: { error: 'unauthorized_client' }, code: 'client_misconfigured' },
  { name: 'V2 refuses offline_access (400 invalid_request about scope)', call: 'exchange', status: 400, body: { error: 'invalid_request', error_description: 'Scope offline_access not allowed for token exchange' }, code: 'client_misconfigured' },
  { name: 'V2 without subject_token_type', call: 'exchange', status: 400, body: { error: 'invalid_request', error_description: "Parameter 'subject_token_type' is required" }, code: 'client_misconfigured' },
  { name: 'scope refused (invalid_scope)', call: 'exchange', status: 400, body: { error: 'invalid_scope' }, code: 'client_misconfigured' },
  { name: 'requested type refused (400 invalid_client)', call: 'exchange', status: 400, body: { error: 'invalid_client', error_description: 'Requested token type not supported' }, code: 'client_misconfigured' },
  { name: 'refresh token not active', call: 'refresh', status: 400, body: { error: 'invalid_grant', error_description: 'Token is not active' }, code: 'refresh_token_invalid' },
  { name: 'offline session not active', call: 'refresh', status: 400, body: { error: 'invalid_grant', error_description: 'Offline session not active' }, code: 'refresh_token_invalid' },
  { name: 'stale token', call: 'refresh', status: 400, body: { error: 'invalid_grant', error_description: 'Stale token' }, code: 'refresh_token_invalid' },
  { name: 'refresh reuse exceeded', call: 'refresh', status: 400, body: '{"error":"invalid_grant","error_description":"Maximum allowed refresh token reuse exceeded"}', code: 'refresh_token_invalid' },
  { name: '429 with delta-seconds Retry-After', call: 'exchange', status: 429, body: '', headers: { 'retry-after': '7' }, code: 'iam_rate_limited', retryAfterMs: 7000 },
  { name: '429 with HTTP-date Retry-After', call: 'refresh', status: 429, body: {}, headers: { 'retry-after': new Date(NOW + 3000).toUTCString() }, code: 'iam_rate_limited', retryAfterMs: 3000 },
  { name: '429 without Retry-After waits the default', call: 'exchange', status: 429, body: {}, code: 'iam_rate_limited', retryAfterMs: 1000 },
  { name: '503', call: 'exchange', status: 503, body: 'Service Unavailable', code: 'iam_unavailable' },
  { name: '500 from a very old Keycloak', call: 'exchange', status: 500, body: { error: 'unknown_error' }, code: 'iam_unavailable' },
  { name: '502 with an HTML body', call: 'refresh', status: 502, body: '<html>bad gateway</html>', code: 'iam_unavailable' },
  { name: '200 without an access token', call: 'exchange', status: 200, body: { token_type: 'Bearer' }, code: 'iam_unavailable' },
  { name: '404 (wrong token URL)', call: 'exchange', status: 404, body: 'Not Found', code: 'client_misconfigured' },
  { name: 'refresh answered invalid_request', call: 'refresh', status: 400, body: { error: 'invalid_request' }, code: 'client_misconfigured' },
];

describe('classifyIamResponse', () => {
  it.each(cases)('$name → $code', ({ call, status, body, headers, code, retryAfterMs }) => {
    let thrown: unknown;
    try {
      classifyIamResponse(call, status, headers ?? {}, body, NOW);
    } catch (err) {
      thrown = err;
    }
    expect(isTokexError(thrown)).toBe(true);
    expect((thrown as { code: string }).code).toBe(code);
    if (retryAfterMs !== undefined) expect((thrown as { retryAfterMs: number }).retryAfterMs).toBe(retryAfterMs);
  });

  it('normalises a Keycloak success, accepting expires_in as a numeric string', () => {
    const tokens = classifyIamResponse('exchange', 200, {}, {
      access_token: 'a.b.c', expires_in: '300', refresh_expires_in: 0, refresh_token: 'r', token_type: 'Bearer', scope: 'profile offline_access',
    });
    expect(tokens).toEqual({
      accessToken: 'a.b.c', expiresInSeconds: 300, refreshToken: 'r', refreshExpiresInSeconds: 0, scope: 'profile offline_access', tokenType: 'Bearer', accessClaims: null,
    });
  });

  it('accepts a success without a refresh token', () => {
    const tokens = classifyIamResponse('exchange', 200, {}, JSON.stringify({ access_token: 'x', expires_in: 60 }));
    expect(tokens.refreshToken).toBeUndefined();
    expect(tokens.refreshExpiresInSeconds).toBeUndefined();
  });

  it('never repeats an opaque token echoed in a description', () => {
    const opaque = 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5';
    try {
      classifyIamResponse('refresh', 400, {}, { error: 'invalid_grant', error_description: `Token ${opaque} is not active` });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain(opaque);
      expect((err as Error).message).toContain('is not active');
    }
  });

  it('never repeats a token-looking description in its message', () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    try {
      classifyIamResponse('exchange', 400, {}, { error: 'invalid_request', error_description: `bad ${token}` });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain(token);
    }
  });
});

describe('parseRetryAfterMs', () => {
  it.each([
    ['0', 0], ['12', 12_000], ['1.5', 1500], ['', 1000], ['soon', 1000], ['99999999', 600_000],
    [new Date(NOW - 5000).toUTCString(), 0], [new Date(NOW + 60_000).toUTCString(), 60_000],
  ])('%s → %d ms', (value, expected) => {
    expect(parseRetryAfterMs(value, NOW)).toBe(expected);
  });
});
