/**
 * When a user's tokens are next due for a refresh: the single rule behind the due index.
 */

/** Settings of the refresh schedule (see config.ts for the variables). */
export interface RefreshPolicy {
  /** Refresh this long before an expiry. @defaultValue 60 */
  skewSeconds: number;
  /** Refresh offline tokens at least this often, to keep the IAM's offline session from idling out. @defaultValue 604800 */
  offlineKeepaliveSeconds: number;
  /** `eager` refreshes access tokens before they expire; `lazy` only keeps sessions alive. @defaultValue 'eager' */
  accessTokens: 'eager' | 'lazy';
}

/** Default policy, matching the configuration defaults. */
export const DEFAULT_REFRESH_POLICY: RefreshPolicy = { skewSeconds: 60, offlineKeepaliveSeconds: 7 * 86_400, accessTokens: 'eager' };

/** The facts about a token set the schedule depends on. */
export interface DueInput {
  refreshable: boolean;
  offline: boolean;
  accessExpMs: number;
  /** Online refresh token expiry; null for offline tokens or when the IAM gave none. */
  refreshExpMs: number | null;
  /** When the tokens were last obtained (exchange or refresh). */
  refreshedAtMs: number;
}

/** Largest random head start given to an access-token refresh, so a login burst does not become a refresh burst. */
const MAX_JITTER_MS = 30_000;

/**
 * Earliest of: access expiry − skew − jitter (eager only); last refresh + keep-alive (offline);
 * refresh expiry − skew (online). Never sooner than half the access token's lifetime after the last
 * refresh, so a skew longer than the lifetime cannot cause a refresh loop. Null when the set
 * cannot be refreshed (no refresh token).
 */
export function computeDueAtMs(input: DueInput, policy: RefreshPolicy, random: () => number = Math.random): number | null {
  if (!input.refreshable) return null;
  const skewMs = policy.skewSeconds * 1000;
  const lifetimeMs = Math.max(0, input.accessExpMs - input.refreshedAtMs);
  const candidates: number[] = [];
  if (policy.accessTokens === 'eager') {
    const jitterMs = random() * Math.min(lifetimeMs * 0.1, MAX_JITTER_MS);
    candidates.push(input.accessExpMs - skewMs - jitterMs);
  }
  if (input.offline) candidates.push(input.refreshedAtMs + policy.offlineKeepaliveSeconds * 1000);
  if (input.refreshExpMs !== null) candidates.push(input.refreshExpMs - skewMs);
  if (candidates.length === 0) return null;
  const floorMs = input.refreshedAtMs + lifetimeMs / 2;
  return Math.round(Math.max(Math.min(...candidates), Math.min(floorMs, input.refreshExpMs ?? floorMs)));
}
