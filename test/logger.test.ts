import { describe, expect, it } from 'vitest';
import { captureLogger } from './helpers/logs.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';

const jwt = fakeJwt({ sub: 'someone', exp: epochSeconds(60) });

describe('the logger never prints a token', () => {
  it('redacts token-named fields at any depth and JWT-shaped strings anywhere', () => {
    const { logger, text } = captureLogger('trace');
    logger.info({ refresh_token: 'opaque-refresh', nested: { subjectToken: 'opaque-subject', note: `got ${jwt}` } }, `token ${jwt}`);
    logger.info({ a: { b: { c: { d: { e: { f: { g: { refresh_token: 'deep-opaque', x: jwt } } } } } } } });
    for (const secret of [jwt, 'opaque-refresh', 'opaque-subject', 'deep-opaque']) expect(text()).not.toContain(secret);
  });

  it('redacts child-logger bindings', () => {
    const { logger, text } = captureLogger('trace');
    logger.child({ token: 'opaque-bound', note: jwt }).warn('bound');
    expect(text()).toContain('bound');
    for (const secret of [jwt, 'opaque-bound']) expect(text()).not.toContain(secret);
  });

  it('drops the request config, headers and body of an axios-like error', () => {
    const { logger, text } = captureLogger('trace');
    const err = Object.assign(new Error('Request failed'), {
      config: { data: 'grant_type=refresh_token&refresh_token=opaque-in-body', headers: { Authorization: 'Basic c2VjcmV0' } },
      request: { _header: 'POST /token' },
      response: { data: { access_token: 'opaque-in-response' } },
    });
    logger.error({ err }, 'IAM call failed');
    expect(text()).toContain('Request failed');
    for (const secret of ['opaque-in-body', 'c2VjcmV0', 'opaque-in-response']) expect(text()).not.toContain(secret);
  });
});
