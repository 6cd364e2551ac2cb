import type { Logger } from 'pino';
import { tokenSetAad, type KeyRing } from './crypto.js';
import { TokexError } from './errors.js';
import type { IamClient } from './iam-client.js';
import { accessClaimsOf, type TokenResponse } from './iam-outcome.js';
import { KeyLayout } from './keys.js';
import { createLogger } from './logger.js';
import { asRedisError, nodeForKey, type RedisClient } from './redis.js';
import { computeDueAtMs, DEFAULT_REFRESH_POLICY, type RefreshPolicy } from './refresh-policy.js';
import { scripts } from './scripts.js';
import { decodeTokenSet, encodeTokenSet } from './token-set-codec.js';
import { meets, UserRefresher } from './refresh-user.js';
import { readJwtClaims } from './subject-token.js';
import { UserLock, type UserLockOptions } from './user-lock.js';

/** Lifecycle state of a user's tokens. */
export type TokenState = 'active' | 'reauth_required' | 'revoked';

/** Everything about a user's tokens except the tokens: safe to show, log and return from APIs. */
export interface TokenStatus {
  userId: string;
  state: TokenState;
  /** Incremented by every write; refresh writes are conditional on it. */
  version: number;
  username?: string;
  /** True for an offline refresh token (`refresh_expires_in: 0` / `typ: Offline`). */
  offline: boolean;
  /** True while a refresh token is stored. */
  refreshable: boolean;
  scope?: string;
  /** When the stored set was issued by the IAM (ms since epoch). */
  issuedAtMs: number;
  accessExpiresAtMs: number;
  /** Expiry of an online refresh token; null for offline tokens or when unknown. */
  refreshExpiresAtMs: number | null;
  /** Last exchange or refresh (ms since epoch): the base of the offline keep-alive. */
  refreshedAtMs: number;
  updatedAtMs: number;
  /** Next scheduled refresh (ms since epoch), or null when none is scheduled. */
  dueAtMs: number | null;
  /**
   * The due time the last write computed from the refresh policy, or null (not refreshable, or
   * written by an older version). `dueAtMs` (the due index) may be later while a refresh job is
   * queued or after a failed refresh; this one says whether a refresh is still needed.
   */
  scheduledDueAtMs: number | null;
  /** Why the state is not `active` (e.g. the IAM's error code). */
  reason?: string;
}

/** A decrypted token set with its metadata. */
export interface StoredTokenSet {
  accessToken: string;
  refreshToken?: string;
  status: TokenStatus;
}

/** What a write stores for one user. */
export interface SaveTokenSetInput {
  userId: string;
  tokens: TokenResponse;
  /** When the IAM answered (ms since epoch): expiries are relative to it, and it orders writes. */
  issuedAtMs: number;
  username?: string;
  /** For refresh writes: the version read before refreshing; the write fails with `stale_write` if it changed. */
  expectedVersion?: number;
  /** Event recorded on the stream. @defaultValue 'stored' */
  event?: 'stored' | 'refreshed';
  /**
   * For exchange writes: when the subject token was received. A user revoked after that keeps
   * `revoked` (the write fails with `revoked_meanwhile`): an older login never undoes a logout.
   */
  receivedAtMs?: number;
}

/** Options of {@link TokenStore}. */
export interface TokenStoreOptions {
  redis: RedisClient;
  prefix: string;
  keyRing: KeyRing;
  refreshPolicy?: RefreshPolicy;
  /** Approximate maximum length of the events stream. @defaultValue 100000 */
  eventsMaxLen?: number;
  /** The IAM client used to refresh on demand in {@link TokenStore.getAccessToken}; without it the store only reads. */
  iam?: IamClient;
  /** Logger of on-demand refreshes (never given a token). @defaultValue a silent logger */
  logger?: Logger;
  /** Per-user refresh lock settings. @defaultValue derived from a 10 s IAM timeout (see user-lock.ts) */
  lock?: UserLockOptions;
}

/** Options of {@link TokenStore.getAccessToken}. */
export interface GetAccessTokenOptions {
  /** The returned token stays valid at least this long (or half its lifetime, if the IAM issues shorter ones). @defaultValue 30 */
  minValiditySeconds?: number;
}

/**
 * Users' tokens in Redis: the encrypted token set (AES-256-GCM over {@link encodeTokenSet}'s layout,
 * AAD bound to the user) under `<prefix>:tok:<userId>`, plaintext metadata under `<prefix>:meta:<userId>`, and the
 * due index. Writes go through Lua scripts, so they are atomic and ordered (README, "Redis data format").
 */
export class TokenStore {
  readonly keys: KeyLayout;
  readonly redis: RedisClient;
  private readonly keyRing: KeyRing;
  private readonly policy: RefreshPolicy;
  private readonly eventsMaxLen: number;
  /** The per-user refresh lock (shared by readers and the refresh worker). */
  readonly locks: UserLock;
  /** Rotation-safe refresh of one user; present when the store was given an IAM client. */
  readonly refresher?: UserRefresher;

  constructor(options: TokenStoreOptions) {
    this.redis = options.redis;
    this.keys = new KeyLayout(options.prefix);
    this.keyRing = options.keyRing;
    this.policy = options.refreshPolicy ?? DEFAULT_REFRESH_POLICY;
    this.eventsMaxLen = options.eventsMaxLen ?? 100_000;
    this.locks = new UserLock(options.redis, this.keys, options.lock);
    if (options.iam) {
      this.refresher = new UserRefresher({
        store: this,
        iam: options.iam,
        locks: this.locks,
        logger: options.logger ?? createLogger({ level: 'silent' }),
      });
    }
  }

  /**
   * An access token of the user valid for at least `minValiditySeconds` (default 30). When the
   * stored one is not, refreshes it on demand under the per-user lock: concurrent callers, in this
   * process or others, cause one IAM call and all get its result. Throws a {@link TokexError}:
   * `not_found` (nothing stored), `reauth_required` (the user must log in again; the message says
   * why), `iam_unavailable` (IAM down or rate limiting: try again later), `lock_timeout`,
   * `redis_unavailable`, `client_misconfigured`, or `config_invalid` when a refresh is needed and
   * the store has no IAM client.
   */
  async getAccessToken(userId: string, options: GetAccessTokenOptions = {}): Promise<string> {
    const minValiditySeconds = options.minValiditySeconds ?? 30;
    if (typeof userId !== 'string' || userId === '') throw new TokexError('user_id_invalid', 'userId must be a non-empty string');
    if (!Number.isFinite(minValiditySeconds) || minValiditySeconds < 0) {
      throw new TokexError('invalid_input', 'minValiditySeconds must be a number >= 0');
    }
    const minValidityMs = minValiditySeconds * 1000;
    if (this.refresher) return this.refresher.accessToken(userId, minValidityMs);
    const set = await this.get(userId);
    if (set && meets(set, { kind: 'valid', minValidityMs })) return set.accessToken;
    if (!set) {
      const status = await this.status(userId);
      if (!status) throw new TokexError('not_found', `no tokens stored for ${userId}`);
      throw new TokexError('reauth_required', `${userId} must log in again (${status.state}: ${status.reason ?? 'unknown'})`);
    }
    throw new TokexError('config_invalid', `the access token of ${userId} needs a refresh and this TokenStore has no IAM client (pass \`iam\`)`);
  }

  /**
   * Stores a user's tokens atomically with their metadata, due time and event. Throws `stale_write`
   * when a newer set is stored or the expected version moved, `redis_unavailable` when Redis fails.
   */
  async save(input: SaveTokenSetInput): Promise<{ version: number; status: TokenStatus }> {
    const { userId, tokens, issuedAtMs } = input;
    const refreshable = tokens.refreshToken !== undefined;
    const offline = refreshable && isOfflineRefresh(tokens);
    // A JWT's own `exp` is in whole seconds, so it may fall up to a second before issuedAt + expires_in:
    // trust the earlier, but by at most a second, so an IAM whose clock is behind cannot cause a refresh loop.
    const jwtExp = accessClaimsOf(tokens)?.exp;
    const localExpMs = issuedAtMs + tokens.expiresInSeconds * 1000;
    const accessExpMs = typeof jwtExp === 'number' ? Math.max(localExpMs - 1000, Math.min(localExpMs, jwtExp * 1000)) : localExpMs;
    const refreshExpMs = refreshable && !offline && tokens.refreshExpiresInSeconds
      ? issuedAtMs + tokens.refreshExpiresInSeconds * 1000
      : null;
    const dueAtMs = computeDueAtMs({ refreshable, offline, accessExpMs, refreshExpMs, refreshedAtMs: issuedAtMs }, this.policy);
    const plaintext = encodeTokenSet({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken });
    const envelope = this.keyRing.seal(plaintext, tokenSetAad(userId));
    const now = Date.now();
    const fields: Record<string, string> = {
      offline: offline ? '1' : '0',
      refreshable: refreshable ? '1' : '0',
      issuedAtMs: String(issuedAtMs),
      accessExpMs: String(accessExpMs),
      refreshExpMs: refreshExpMs === null ? '' : String(refreshExpMs),
      refreshedAtMs: String(issuedAtMs),
      updatedAtMs: String(now),
      // Kept beside the due index, which a queued or failed refresh moves (claim-due-1.lua).
      dueAtMs: dueAtMs === null ? '' : String(dueAtMs),
    };
    // Through UTF-8 and back: a lone surrogate from the IAM becomes U+FFFD instead of JSON that
    // the script's cjson refuses.
    if (tokens.scope) fields.scope = Buffer.from(tokens.scope, 'utf8').toString('utf8');
    let result: [number, number];
    try {
      result = await scripts.saveTokens.run<[number, number]>(
        this.redis,
        [this.keys.tokens(userId), this.keys.meta(userId), this.keys.due, this.keys.usernames, this.keys.events],
        [
          envelope, issuedAtMs, input.expectedVersion ?? '', dueAtMs ?? '', input.event ?? 'stored', now,
          this.eventsMaxLen, userId, input.username ?? '', input.receivedAtMs ?? '', JSON.stringify(fields),
        ],
      );
    } catch (err) {
      throw asRedisError(err);
    }
    const [version, current] = result;
    if (version === -1) throw new TokexError('stale_write', `token set of ${userId} changed meanwhile (now version ${current})`);
    if (version === -2) throw new TokexError('stale_write', `a newer token set of ${userId} is already stored`);
    if (version === -4) throw new TokexError('revoked_meanwhile', `the tokens of ${userId} were revoked after this subject token was received`);
    return {
      version,
      status: toStatus(userId, { ...fields, version: String(version), state: 'active', username: input.username ?? '' }, dueAtMs),
    };
  }

  /** The decrypted token set and metadata of a user, or null when none is stored. */
  async get(userId: string): Promise<StoredTokenSet | null> {
    let reply: [Error | null, unknown][] | null;
    try {
      reply = await this.redis.multi()
        .getBuffer(this.keys.tokens(userId))
        .hgetall(this.keys.meta(userId))
        .zscore(this.keys.due, userId)
        .exec();
    } catch (err) {
      throw asRedisError(err);
    }
    const [[, envelope], [, meta], [, due]] = reply as [[null, Buffer | null], [null, Record<string, string>], [null, string | null]];
    if (!envelope || !meta || Object.keys(meta).length === 0) return null;
    const plaintext = decodeTokenSet(this.keyRing.open(envelope, tokenSetAad(userId)));
    return {
      accessToken: plaintext.accessToken,
      refreshToken: plaintext.refreshToken,
      status: toStatus(userId, meta, due === null ? null : Number(due)),
    };
  }

  /** Like {@link get}, looked up by the token's `preferred_username`. */
  async getByUsername(username: string): Promise<StoredTokenSet | null> {
    const userId = await this.userIdForUsername(username);
    return userId ? this.get(userId) : null;
  }

  /** The user id stored for a `preferred_username`, or null. */
  async userIdForUsername(username: string): Promise<string | null> {
    try {
      return await this.redis.hget(this.keys.usernames, username);
    } catch (err) {
      throw asRedisError(err);
    }
  }

  /** Metadata only (never a token), or null when the user is unknown. */
  async status(userId: string): Promise<TokenStatus | null> {
    let meta: Record<string, string>;
    let due: string | null;
    try {
      [meta, due] = await Promise.all([this.redis.hgetall(this.keys.meta(userId)), this.redis.zscore(this.keys.due, userId)]);
    } catch (err) {
      throw asRedisError(err);
    }
    if (Object.keys(meta).length === 0) return null;
    return toStatus(userId, meta, due === null ? null : Number(due));
  }

  /**
   * Marks a refresh of the stored set (version `expectedVersion`) as in flight, before the IAM is
   * called: the fence that stops another process from using the same refresh token while this one's
   * answer is not yet stored. Returns `marked`, `changed` (re-read) or `busy` (another refresh of this
   * set is in flight and younger than `bindingMs`).
   */
  async markRefreshing(userId: string, expectedVersion: number, owner: string, bindingMs: number): Promise<'marked' | 'changed' | 'busy'> {
    try {
      const [code] = await scripts.markRefreshing.run<[number, number]>(this.redis, [this.keys.meta(userId)], [expectedVersion, owner, Date.now(), bindingMs]);
      return code === 1 ? 'marked' : code === -1 ? 'changed' : 'busy';
    } catch (err) {
      throw asRedisError(err);
    }
  }

  /** Clears this owner's in-flight mark (the IAM answered with an error: the refresh token is unused). */
  async unmarkRefreshing(userId: string, owner: string): Promise<void> {
    try {
      await scripts.unmarkRefreshing.run(this.redis, [this.keys.meta(userId)], [owner]);
    } catch (err) {
      throw asRedisError(err);
    }
  }

  /** Takes the user out of the due index unless it has tokens to refresh (atomic check). */
  async unscheduleIfIdle(userId: string): Promise<boolean> {
    try {
      return (await scripts.unscheduleIdle.run<number>(this.redis, [this.keys.tokens(userId), this.keys.meta(userId), this.keys.due], [userId])) === 1;
    } catch (err) {
      throw asRedisError(err);
    }
  }

  /** Waits for refreshed tokens still being written (they may be the only valid ones): call before exiting. */
  async drain(): Promise<void> {
    await this.refresher?.drain();
  }

  /**
   * Deletes a user's tokens and records the new state and reason in the metadata (kept for
   * operators and readers), takes the user out of the due index and publishes the event.
   * With `expectedVersion`, does nothing and throws `stale_write` when the set changed meanwhile.
   * Throws `not_found` for an unknown user.
   */
  async end(userId: string, state: Exclude<TokenState, 'active'>, reason: string, expectedVersion?: number): Promise<number> {
    let result: [number, number];
    try {
      result = await scripts.endTokens.run<[number, number]>(
        this.redis,
        [this.keys.tokens(userId), this.keys.meta(userId), this.keys.due, this.keys.events],
        [state, reason, expectedVersion ?? '', Date.now(), this.eventsMaxLen, userId],
      );
    } catch (err) {
      throw asRedisError(err);
    }
    if (result[0] === -3) throw new TokexError('not_found', `no tokens stored for ${userId}`);
    if (result[0] === -1) throw new TokexError('stale_write', `token set of ${userId} changed meanwhile (now version ${result[1]})`);
    return result[0];
  }
}

/** Offline when Keycloak says `refresh_expires_in: 0`, the refresh JWT says `typ: Offline`, or (no lifetime given) the scope has offline_access. */
function isOfflineRefresh(tokens: TokenResponse): boolean {
  if (tokens.refreshExpiresInSeconds === 0) return true;
  const typ = tokens.refreshToken ? readJwtClaims(tokens.refreshToken)?.typ : undefined;
  if (typ === 'Offline') return true;
  if (typ === 'Refresh') return false;
  return tokens.refreshExpiresInSeconds === undefined && (tokens.scope ?? '').split(' ').includes('offline_access');
}

function toStatus(userId: string, meta: Record<string, string>, dueAtMs: number | null): TokenStatus {
  const num = (v: string | undefined) => (v ? Number(v) : 0);
  return {
    userId,
    state: (meta.state as TokenState) ?? 'active',
    version: num(meta.version),
    username: meta.username || undefined,
    offline: meta.offline === '1',
    refreshable: meta.refreshable === '1',
    scope: meta.scope || undefined,
    issuedAtMs: num(meta.issuedAtMs),
    accessExpiresAtMs: num(meta.accessExpMs),
    refreshExpiresAtMs: meta.refreshExpMs ? Number(meta.refreshExpMs) : null,
    refreshedAtMs: num(meta.refreshedAtMs),
    updatedAtMs: num(meta.updatedAtMs),
    dueAtMs,
    // Only an active set is scheduled; ending a set keeps the last computed value in the hash.
    scheduledDueAtMs: meta.dueAtMs && (meta.state ?? 'active') === 'active' ? Number(meta.dueAtMs) : null,
    reason: meta.reason || undefined,
  };
}

/**
 * Users by metadata `state` (`active`, `reauth_required`, `revoked`), from a SCAN over every metadata
 * key with one pipelined HGET each: O(users). For operator commands and slow metrics, not hot paths.
 */
export async function countUsersByState(redis: RedisClient, keys: KeyLayout): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const node = await nodeForKey(redis, keys.metaPattern);
  let cursor = '0';
  do {
    const [next, metaKeys] = await node.scan(cursor, 'MATCH', keys.metaPattern, 'COUNT', 1000);
    cursor = next;
    if (metaKeys.length === 0) continue;
    const pipeline = node.pipeline();
    for (const key of metaKeys) pipeline.hget(key, 'state');
    for (const [err, state] of (await pipeline.exec()) ?? []) {
      if (err) throw asRedisError(err);
      const name = typeof state === 'string' && state ? state : 'unknown';
      counts[name] = (counts[name] ?? 0) + 1;
    }
  } while (cursor !== '0');
  return counts;
}
