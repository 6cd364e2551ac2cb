import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { TokexError } from './errors.js';
import type { KeyLayout } from './keys.js';
import { asRedisError } from './redis.js';
import { scripts } from './scripts.js';
import { sleep } from './timing.js';

/** Settings of the per-user refresh lock. */
export interface UserLockOptions {
  /**
   * Time to live of a lock. It must outlast one IAM call; the holder also extends it every third of
   * this while it works, so a crashed holder blocks the user for at most this long.
   * @defaultValue 2 × IAM timeout + 5000 (25000 with the default IAM_TIMEOUT_MS)
   */
  ttlMs?: number;
  /** How long a caller waits for another holder before giving up with `lock_timeout`. @defaultValue ttlMs + 5000 */
  waitMs?: number;
  /** Pause between checks while waiting for another holder. @defaultValue 25 */
  pollMs?: number;
}

/** Lock defaults derived from the IAM timeout, so a lock always outlives the call it protects. */
export function defaultLockOptions(iamTimeoutMs = 10_000): Required<UserLockOptions> {
  const ttlMs = iamTimeoutMs * 2 + 5000;
  return { ttlMs, waitMs: ttlMs + 5000, pollMs: 25 };
}

/** A lock this process holds; {@link release} it in a `finally`. */
export interface HeldLock {
  readonly userId: string;
  /** Releases the lock if still ours (compare-and-delete); stops the extension timer. */
  release(): Promise<void>;
}

/**
 * Per-user Redis lock that makes "at most one refresh per user at a time, across all processes"
 * true. `SET <prefix>:lock:<userId> <random owner> NX PX ttl` takes it; a timer extends it while
 * held (compare-and-expire, `extend-lock-1.lua`); release is compare-and-delete
 * (`release-lock-1.lua`), so a holder whose lock expired can never delete its successor's lock.
 */
export class UserLock {
  private readonly settings: Required<UserLockOptions>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    options: UserLockOptions = {},
  ) {
    const defaults = defaultLockOptions();
    const ttlMs = options.ttlMs ?? defaults.ttlMs;
    this.settings = { ttlMs, waitMs: options.waitMs ?? ttlMs + 5000, pollMs: options.pollMs ?? defaults.pollMs };
  }

  /** The effective settings. */
  get options(): Readonly<Required<UserLockOptions>> {
    return this.settings;
  }

  /** Takes the lock if it is free; null when another owner holds it. */
  async tryAcquire(userId: string): Promise<HeldLock | null> {
    const key = this.keys.lock(userId);
    const owner = randomBytes(16).toString('base64url');
    let ok: string | null;
    try {
      ok = await this.redis.set(key, owner, 'PX', this.settings.ttlMs, 'NX');
    } catch (err) {
      throw asRedisError(err);
    }
    if (ok !== 'OK') return null;
    const extendEveryMs = Math.max(50, Math.floor(this.settings.ttlMs / 3));
    const timer = setInterval(() => {
      // A failed extension only shortens our hold; the version-guarded write still protects the data.
      scripts.extendLock.run(this.redis, [key], [owner, this.settings.ttlMs]).catch(() => undefined);
    }, extendEveryMs);
    timer.unref();
    let released = false;
    return {
      userId,
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        try {
          await scripts.releaseLock.run(this.redis, [key], [owner]);
        } catch {
          // The TTL frees it: nobody waits longer than ttlMs.
        }
      },
    };
  }

  /**
   * Waits until nobody holds the user's lock (the holder released it or it expired), polling.
   * Throws `lock_timeout` after `waitMs`.
   */
  async waitUntilFree(userId: string, waitMs = this.settings.waitMs): Promise<void> {
    const key = this.keys.lock(userId);
    const deadline = Date.now() + waitMs;
    for (;;) {
      let exists: number;
      try {
        exists = await this.redis.exists(key);
      } catch (err) {
        throw asRedisError(err);
      }
      if (exists === 0) return;
      if (Date.now() >= deadline) {
        throw new TokexError('lock_timeout', `another process has been refreshing ${userId} for more than ${waitMs} ms`);
      }
      // Jitter so waiting processes do not poll in lockstep.
      await sleep(this.settings.pollMs * (0.5 + Math.random()));
    }
  }
}
