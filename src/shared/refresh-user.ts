import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isTokexError, TokexError } from './errors.js';
import type { IamClient } from './iam-client.js';
import { accessClaimsOf, type TokenResponse } from './iam-outcome.js';
import { retryRedisWrite } from './retry-write.js';
import type { StoredTokenSet, TokenStatus, TokenStore } from './token-store.js';
import type { UserLock } from './user-lock.js';
import { withinMs } from './timing.js';

/**
 * What a caller needs from a user's token set:
 * - `due`: the scheduler's refresh job; refresh only if the set is still due (nobody refreshed it since);
 * - `valid`: a reader; refresh only if the access token is valid for less than `minValidityMs`.
 */
export type RefreshNeed = { kind: 'due' } | { kind: 'valid'; minValidityMs: number };

/**
 * How a refresh attempt ended:
 * - `refreshed`: this call refreshed and stored new tokens;
 * - `fresh`: nothing to do, the stored set already meets the need (often: another caller refreshed it);
 * - `not_found`: nothing stored for the user;
 * - `inactive`: the user is `reauth_required` or `revoked` (see `status.reason`);
 * - `not_refreshable`: no refresh token is stored (the IAM gave none) and the need is not met;
 * - `reauth_required`: the IAM rejected the refresh token just now; the user was marked.
 */
export type RefreshOutcome = 'refreshed' | 'fresh' | 'not_found' | 'inactive' | 'not_refreshable' | 'reauth_required';

/** Result of {@link UserRefresher.ensure}: the outcome and the token set now stored (when there is one). */
export interface RefreshResult {
  outcome: RefreshOutcome;
  set: StoredTokenSet | null;
  /** Metadata when no set is stored (inactive users keep theirs). */
  status: TokenStatus | null;
  /** Why the user needs to log in again, for `inactive` and `reauth_required`. */
  reason?: string;
}

/** Options of {@link UserRefresher}. */
export interface UserRefresherOptions {
  store: TokenStore;
  iam: IamClient;
  locks: UserLock;
  logger: Logger;
  /**
   * How long a refreshed set's write is retried while Redis is down, holding the new tokens in memory
   * (the old refresh token may already be dead). @defaultValue 240000
   */
  writeRetryMs?: number;
}

/** Default of {@link UserRefresherOptions.writeRetryMs}. */
const WRITE_RETRY_MS = 4 * 60_000;
/**
 * IAM answers after which the refresh token is known to be unused (the request was refused before
 * any rotation): 400 other than invalid_grant, 401, 403, 429, 503.
 */
const TOKEN_UNUSED_STATUSES = new Set([400, 401, 403, 429, 503]);

/** How many times one call may go around (lock lost, set changed) before giving up. */
const MAX_PASSES = 5;

/**
 * The rotation-safe refresh of one user, shared by the refresh worker and the readers:
 * take the per-user lock → re-read the stored set → if it already meets the need (someone else
 * refreshed it), do nothing → call the IAM → store the new set guarded by the version read under the
 * lock, keeping the old refresh token when the IAM returned none, retrying the write while Redis is
 * down (the old refresh token may already be dead). An `invalid_grant` marks the user
 * `reauth_required`. Callers in other processes that lose the lock race wait for the holder and
 * re-read; callers in this process share one pending promise per user.
 */
export class UserRefresher {
  private readonly pending = new Map<string, Promise<RefreshResult>>();
  /** Refreshes past their in-flight mark (IAM call and write): shutdown waits for them. */
  private readonly flights = new Set<Promise<unknown>>();
  private readonly writeRetryMs: number;

  constructor(private readonly options: UserRefresherOptions) {
    this.writeRetryMs = options.writeRetryMs ?? WRITE_RETRY_MS;
  }

  /** The store this refresher writes to. */
  get store(): TokenStore {
    return this.options.store;
  }

  /**
   * How long another process's in-flight mark keeps a set from being refreshed: longer than that
   * process can still be trying to store its answer, so its refresh token is never reused meanwhile.
   */
  private get markBindingMs(): number {
    return this.options.locks.options.ttlMs + this.writeRetryMs + 30_000;
  }

  /**
   * Resolves when every refresh past its mark has stored its answer (or given up), or after
   * `timeoutMs`: a process must not exit holding the only valid refresh token of a user.
   */
  async drain(timeoutMs = this.writeRetryMs + 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.flights.size > 0 && Date.now() < deadline) {
      await withinMs(Promise.allSettled([...this.flights]), Math.max(0, deadline - Date.now()));
    }
  }

  /** Makes sure the user's set meets `need`, refreshing it at most once across all processes. */
  async ensure(userId: string, need: RefreshNeed, signal?: AbortSignal): Promise<RefreshResult> {
    // Bounded: each pass either returns or waits for a flight that someone else started.
    for (let pass = 0; pass < 5; pass += 1) {
      const inflight = this.pending.get(userId);
      if (!inflight) break;
      const result = await inflight;
      if (result.outcome !== 'refreshed' && result.outcome !== 'fresh') return result;
      if (result.set && meets(result.set, need)) return { ...result, outcome: 'fresh' };
    }
    const flight = this.run(userId, need, signal).finally(() => {
      if (this.pending.get(userId) === flight) this.pending.delete(userId);
    });
    this.pending.set(userId, flight);
    return flight;
  }

  /**
   * A valid access token for a reader, refreshed on demand. Throws `not_found`, `reauth_required`
   * (with the reason), `iam_unavailable` (the IAM is down or rate limiting), `lock_timeout`,
   * `client_misconfigured` or `redis_unavailable`.
   */
  async accessToken(userId: string, minValidityMs: number): Promise<string> {
    let result: RefreshResult;
    try {
      result = await this.ensure(userId, { kind: 'valid', minValidityMs });
    } catch (err) {
      if (isTokexError(err, 'iam_rate_limited', 'aborted', 'refresh_in_flight')) {
        throw new TokexError('iam_unavailable', `could not refresh the tokens of ${userId}: ${err.message}`, { retryAfterMs: err.retryAfterMs, status: err.status });
      }
      throw err;
    }
    return readerAnswer(userId, result);
  }

  private async run(userId: string, need: RefreshNeed, signal?: AbortSignal): Promise<RefreshResult> {
    const { store, locks } = this.options;
    const deadlineMs = Date.now() + locks.options.waitMs;
    // Refresh tokens this call already sent to the IAM: never sent twice, whatever happens.
    const used = new Set<string>();
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      const before = await this.settled(userId, need);
      if (before) return before;
      const lock = await locks.tryAcquire(userId);
      if (!lock) {
        // Another process is refreshing this user: wait for it, then re-read.
        await locks.waitUntilFree(userId, Math.max(0, deadlineMs - Date.now()));
        continue;
      }
      try {
        const current = await store.get(userId);
        const settled = await this.settled(userId, need, current);
        if (settled) return settled;
        const set = current as StoredTokenSet;
        if (used.has(set.refreshToken as string)) {
          throw new TokexError('refresh_in_flight', `the refresh of ${userId} was answered but not stored yet; not using its refresh token again`);
        }
        const result = await this.refreshLocked(userId, set, used, signal);
        if (result) return result;
        // The set changed meanwhile (an exchange stored a newer one): look again.
      } finally {
        await lock.release();
      }
    }
    throw new TokexError('lock_timeout', `the token set of ${userId} kept changing while refreshing; try again`);
  }

  /** The result when nothing needs refreshing (or nothing can be), null when a refresh is needed. */
  private async settled(userId: string, need: RefreshNeed, known?: StoredTokenSet | null): Promise<RefreshResult | null> {
    const set = known === undefined ? await this.options.store.get(userId) : known;
    if (!set) {
      const status = await this.options.store.status(userId);
      if (!status) return { outcome: 'not_found', set: null, status: null };
      return { outcome: 'inactive', set: null, status, reason: status.reason ?? status.state };
    }
    if (set.status.state !== 'active') return { outcome: 'inactive', set: null, status: set.status, reason: set.status.reason ?? set.status.state };
    if (meets(set, need)) return { outcome: 'fresh', set, status: set.status };
    if (!set.refreshToken) return { outcome: 'not_refreshable', set, status: set.status };
    return null;
  }

  /**
   * Marks the refresh in flight, calls the IAM and stores the result; null when the set changed
   * meanwhile (caller re-reads). The job's signal only stops us before the IAM call: a refresh the
   * IAM may have performed is never cut off, or its new refresh token would be lost.
   */
  private async refreshLocked(userId: string, set: StoredTokenSet, used: Set<string>, signal?: AbortSignal): Promise<RefreshResult | null> {
    const { store } = this.options;
    const log = this.options.logger.child({ userId });
    if (signal?.aborted) throw new TokexError('aborted', 'refresh cancelled before the IAM call');
    const owner = randomBytes(12).toString('base64url');
    const mark = await store.markRefreshing(userId, set.status.version, owner, this.markBindingMs);
    if (mark === 'changed') return null;
    if (mark === 'busy') {
      throw new TokexError('refresh_in_flight', `another process's refresh of ${userId} was answered but is not stored yet; waiting for it`);
    }
    const refreshToken = set.refreshToken as string;
    used.add(refreshToken);
    // From the mark on, shutdown waits for this refresh: its answer may hold the only valid token.
    const flight = this.callAndStore(userId, set, refreshToken, owner, log);
    this.flights.add(flight);
    void flight.then(() => this.flights.delete(flight), () => this.flights.delete(flight));
    return flight;
  }

  /** The IAM call and the write of its answer, after the in-flight mark. */
  private async callAndStore(userId: string, set: StoredTokenSet, refreshToken: string, owner: string, log: Logger): Promise<RefreshResult | null> {
    const { store, iam } = this.options;
    let tokens: TokenResponse;
    try {
      tokens = await iam.refresh(refreshToken);
    } catch (err) {
      // Only answers that mean "not processed" free the token; after a network error, a timeout, a
      // 2xx without tokens or a 5xx a gateway may send after the IAM rotated, the mark stays and
      // fences the token until it is stale.
      if (isTokexError(err) && err.status !== undefined && TOKEN_UNUSED_STATUSES.has(err.status) && err.code !== 'refresh_token_invalid') {
        await store.unmarkRefreshing(userId, owner).catch((e: unknown) => log.warn({ err: e }, 'could not clear the in-flight mark'));
      }
      if (!isTokexError(err, 'refresh_token_invalid')) throw err;
      const reason = reauthReason(err);
      try {
        await retryRedisWrite(
          () => store.end(userId, 'reauth_required', reason, set.status.version),
          { logger: log, what: `reauth state of ${userId}`, maxWaitMs: this.writeRetryMs },
        );
      } catch (endErr) {
        if (isTokexError(endErr, 'stale_write')) return null;
        throw endErr;
      }
      log.warn({ reason }, 'IAM rejected the refresh token; the user must log in again');
      return { outcome: 'reauth_required', set: null, status: await store.status(userId), reason };
    }
    // This host's clock, for the expiries: the versioned write needs no ordering by time.
    const issuedAtMs = Date.now();
    const carried = carryRefreshToken(tokens, set, issuedAtMs);
    const claims = accessClaimsOf(tokens);
    const username = typeof claims?.preferred_username === 'string' ? claims.preferred_username : set.status.username;
    try {
      const { status } = await retryRedisWrite(
        () => store.save({ userId, tokens: carried, issuedAtMs, username, expectedVersion: set.status.version, event: 'refreshed' }),
        { logger: log, what: `refreshed tokens of ${userId}`, maxWaitMs: this.writeRetryMs },
      );
      log.debug({ version: status.version, accessExpiresAtMs: status.accessExpiresAtMs, dueAtMs: status.dueAtMs }, 'tokens refreshed');
      return {
        outcome: 'refreshed',
        set: { accessToken: carried.accessToken, refreshToken: carried.refreshToken, status },
        status,
      };
    } catch (err) {
      if (!isTokexError(err, 'stale_write')) throw err;
      log.info('a newer token set was stored while refreshing; keeping it');
      return null;
    }
  }
}

/** True when the set already satisfies the caller, so no IAM call is needed. */
export function meets(set: StoredTokenSet, need: RefreshNeed, nowMs = Date.now()): boolean {
  const { status } = set;
  if (need.kind === 'due') {
    // The scheduled time computed by the last write; unknown (older data) counts as due.
    return status.scheduledDueAtMs !== null && status.scheduledDueAtMs > nowMs;
  }
  const remainingMs = status.accessExpiresAtMs - nowMs;
  // An IAM whose tokens live shorter than the caller asks could never satisfy it: accept a token with
  // at least half its lifetime left instead of refreshing on every call.
  const lifetimeMs = Math.max(0, status.accessExpiresAtMs - status.issuedAtMs);
  return remainingMs > 0 && remainingMs >= Math.min(need.minValidityMs, lifetimeMs / 2);
}

/** The IAM may answer a refresh without a refresh token: keep using the old one then. */
function carryRefreshToken(tokens: TokenResponse, set: StoredTokenSet, issuedAtMs: number): TokenResponse {
  if (tokens.refreshToken) return tokens;
  let refreshExpiresInSeconds: number | undefined;
  if (set.status.offline) refreshExpiresInSeconds = 0;
  else if (set.status.refreshExpiresAtMs !== null) {
    // Never 0 here: 0 means "offline" to the store.
    refreshExpiresInSeconds = Math.max(1, Math.floor((set.status.refreshExpiresAtMs - issuedAtMs) / 1000));
  }
  return { ...tokens, refreshToken: set.refreshToken, refreshExpiresInSeconds };
}

/** Short reason recorded for a rejected refresh token: the OAuth error and Keycloak's description. */
function reauthReason(err: TokexError): string {
  const said = /\(([^)]*)\)/.exec(err.message)?.[1];
  return (said ?? err.iamError ?? 'invalid_grant').slice(0, 160);
}

/** Turns a refresh result into a reader's access token or a typed error. */
function readerAnswer(userId: string, result: RefreshResult): string {
  switch (result.outcome) {
    case 'refreshed':
    case 'fresh':
      return (result.set as StoredTokenSet).accessToken;
    case 'not_found':
      throw new TokexError('not_found', `no tokens stored for ${userId}`);
    case 'not_refreshable':
      throw new TokexError('reauth_required', `the access token of ${userId} expires and no refresh token is stored; the user must log in again`);
    case 'inactive':
    case 'reauth_required':
      throw new TokexError('reauth_required', `${userId} must log in again (${result.status?.state ?? 'reauth_required'}: ${result.reason ?? 'unknown'})`);
  }
}
