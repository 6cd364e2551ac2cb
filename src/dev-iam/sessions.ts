import { randomUUID } from 'node:crypto';

/**
 * What the dev IAM knows about a grant beyond what oidc-provider stores:
 * Keycloak's user session (sid), whether it is an offline session, and the
 * audience its access tokens carry.
 */
export interface GrantMeta {
  grantId: string;
  sub: string;
  sid: string;
  clientId: string;
  offline: boolean;
  aud: string[];
  /** Set by endUserSessions: refreshes then fail with "(Offline) session not active". */
  ended?: boolean;
}

/**
 * Keycloak-like user sessions. oidc-provider's own Session model is tied to
 * browser cookies, which this IAM never uses, so sessions are tracked here.
 */
export class SessionRegistry {
  readonly #sessions = new Map<string, { sub: string; active: boolean }>();
  readonly #grants = new Map<string, GrantMeta>();
  /** JWT access tokens are not stored by oidc-provider; remember their grant for introspection. */
  readonly #accessTokens = new Map<string, { grantId: string; exp: number }>();

  /** Starts a new SSO session for a user (a login) and returns its id. */
  openSession(sub: string): string {
    const sid = randomUUID();
    this.#sessions.set(sid, { sub, active: true });
    return sid;
  }

  isSessionActive(sid: string | undefined): boolean {
    return sid !== undefined && this.#sessions.get(sid)?.active === true;
  }

  addGrant(meta: GrantMeta): void {
    this.#grants.set(meta.grantId, meta);
  }

  grant(grantId: string | undefined): GrantMeta | undefined {
    return grantId === undefined ? undefined : this.#grants.get(grantId);
  }

  trackAccessToken(jti: string, grantId: string, exp: number): void {
    this.#accessTokens.set(jti, { grantId, exp });
  }

  accessTokenGrant(jti: string): string | undefined {
    return this.#accessTokens.get(jti)?.grantId;
  }

  /** Ends every session of `sub` and returns the ids of its grants (to be destroyed). */
  endUser(sub: string): string[] {
    for (const session of this.#sessions.values()) {
      if (session.sub === sub) session.active = false;
    }
    const ended: string[] = [];
    for (const meta of this.#grants.values()) {
      if (meta.sub === sub && !meta.ended) {
        meta.ended = true;
        ended.push(meta.grantId);
      }
    }
    return ended;
  }

  /** Forgets access-token bookkeeping for expired tokens. */
  prune(nowSeconds: number): void {
    for (const [jti, entry] of this.#accessTokens) {
      if (entry.exp <= nowSeconds) this.#accessTokens.delete(jti);
    }
  }
}
