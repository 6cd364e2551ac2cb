/**
 * The Redis key layout: the only module that spells key names.
 *
 * | key                         | type   | content                                                    |
 * |-----------------------------|--------|------------------------------------------------------------|
 * | `<prefix>:tok:<userId>`     | string | the encrypted token set (binary envelope, see crypto.ts)   |
 * | `<prefix>:meta:<userId>`    | hash   | plaintext, non-secret metadata (see token-store.ts)        |
 * | `<prefix>:due`              | zset   | userId → next refresh due time (ms since epoch)            |
 * | `<prefix>:uname`            | hash   | preferred_username → userId                                |
 * | `<prefix>:lock:<userId>`    | string | refresh lock: random owner value, with a TTL               |
 * | `<prefix>:events`           | stream | state changes: user, state, reason, at (never a token)     |
 * | `<prefix>:<queue>:*`        | —      | BullMQ's own keys for the `exchange` and `refresh` queues  |
 *
 * With a hash-tagged prefix such as `{tokex}` every key lands in one Redis Cluster slot, which the
 * Lua scripts need (they touch a user's keys and the shared indexes together).
 */
export class KeyLayout {
  constructor(readonly prefix: string) {}

  /** Encrypted token set of a user. */
  tokens(userId: string): string {
    return `${this.prefix}:tok:${userId}`;
  }

  /** Plaintext metadata of a user. */
  meta(userId: string): string {
    return `${this.prefix}:meta:${userId}`;
  }

  /** Sorted set of users by next refresh due time. */
  get due(): string {
    return `${this.prefix}:due`;
  }

  /** Hash from preferred_username to user id. */
  get usernames(): string {
    return `${this.prefix}:uname`;
  }

  /** Per-user refresh lock. */
  lock(userId: string): string {
    return `${this.prefix}:lock:${userId}`;
  }

  /** Stream of token state changes. */
  get events(): string {
    return `${this.prefix}:events`;
  }

  /** Pattern matching every metadata key (for SCAN in maintenance commands). */
  get metaPattern(): string {
    return `${this.prefix}:meta:*`;
  }

  /** The user id inside a metadata key produced by {@link meta}. */
  userIdFromMetaKey(key: string): string {
    return key.slice(`${this.prefix}:meta:`.length);
  }
}
