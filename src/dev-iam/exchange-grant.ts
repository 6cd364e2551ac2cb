import { jwtVerify, type JWTPayload } from 'jose';
import type { Middleware } from 'oidc-provider';
import { kcError } from './kc-errors.js';
import { resolveScopes } from './password-grant.js';
import {
  GRANT_TOKEN_EXCHANGE, TT_ACCESS, TT_JWT, TT_REFRESH, type DevIamRuntime,
} from './runtime.js';
import { issueTokens, paramList, paramString, tokenResponse } from './tokens.js';


/**
 * Form parameters of the token-exchange grant; others (resource, actor_token,
 * requested_subject) are dropped by oidc-provider, i.e. ignored. `audience` may be repeated.
 */
export const EXCHANGE_PARAMS = [
  'subject_token', 'subject_token_type', 'requested_token_type', 'scope', 'audience',
];
export const EXCHANGE_DUPES = ['audience'];

const invalidToken = (): Error => kcError(400, 'invalid_request', 'Invalid token');

/**
 * Verifies a subject token against our own key (signature, issuer, expiry)
 * and that its user session is still active, like Keycloak does.
 */
async function verifySubjectToken(rt: DevIamRuntime, token: string): Promise<JWTPayload & { sub: string }> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, rt.publicKey, {
      issuer: rt.provider.issuer,
      algorithms: ['RS256'],
    }));
  } catch {
    throw invalidToken();
  }
  const sid = typeof payload.sid === 'string' ? payload.sid : undefined;
  if (!payload.sub || !rt.accounts.bySub(payload.sub) || !rt.sessions.isSessionActive(sid)) {
    throw invalidToken();
  }
  return { ...payload, sub: payload.sub };
}

function audienceOf(payload: JWTPayload): string[] {
  if (Array.isArray(payload.aud)) return payload.aud;
  return payload.aud ? [payload.aud] : [];
}

/**
 * RFC 8693 token exchange with Keycloak V1 or V2 semantics (see
 * /work/shared/docs/keycloak.md), chosen at request time from `cfg.mode`.
 */
export function exchangeGrant(rt: DevIamRuntime): Middleware {
  return async (ctx, next) => {
    const oidc = ctx.oidc;
    if (!oidc?.client) throw kcError(401, 'invalid_client', 'Invalid client or Invalid client credentials');
    const { cfg } = rt;
    const params = oidc.params;
    const v2 = cfg.mode === 'v2';

    const subjectTokenType = paramString(params.subject_token_type);
    if (v2 && subjectTokenType === undefined) {
      throw kcError(400, 'invalid_request', "Parameter 'subject_token_type' is required");
    }
    const allowedTypes = v2 ? [TT_ACCESS] : [TT_ACCESS, TT_JWT];
    if (subjectTokenType !== undefined && !allowedTypes.includes(subjectTokenType)) {
      throw kcError(400, 'invalid_request', v2
        ? "Parameter 'subject_token' supports access tokens only"
        : 'Invalid token type, must be access token');
    }

    const requested = paramString(params.requested_token_type) ?? (v2 ? TT_ACCESS : TT_REFRESH);
    if (requested !== TT_ACCESS && requested !== TT_REFRESH) {
      throw kcError(400, 'invalid_request', `requested_token_type unsupported: ${requested}`);
    }

    const requestedScopes = paramList(params.scope);
    if (v2 && requestedScopes.includes('offline_access')) {
      throw kcError(400, 'invalid_request', 'Scope offline_access not allowed for token exchange');
    }

    const subjectToken = paramString(params.subject_token);
    if (!subjectToken) {
      throw kcError(400, 'invalid_request', "Parameter 'subject_token' is required");
    }
    const subject = await verifySubjectToken(rt, subjectToken);

    if (v2 && !audienceOf(subject).includes(oidc.client.clientId)) {
      throw kcError(403, 'access_denied', 'Client is not within the token audience');
    }

    const scopes = resolveScopes(requestedScopes);
    const withRefreshToken = requested === TT_REFRESH && (!v2 || cfg.v2RefreshSameSession);
    const audience = paramList(params.audience);
    const sid = typeof subject.sid === 'string' ? subject.sid : rt.sessions.openSession(subject.sub);

    const tokens = await issueTokens(rt, {
      ctx,
      client: oidc.client,
      sub: subject.sub,
      // Same user session as the subject token (V2 "SAME_SESSION"); ending the
      // user's sessions therefore also kills the exchanged tokens.
      sid,
      scopes,
      aud: audience.length > 0 ? audience : [oidc.client.clientId],
      gty: 'token_exchange',
      withRefreshToken,
    });
    ctx.body = tokenResponse(tokens, {
      issued_token_type: tokens.refreshToken !== undefined ? TT_REFRESH : TT_ACCESS,
    });
    await next();
  };
}
