import { isTokexError, TokexError } from './errors.js';
import type { IamClient } from './iam-client.js';
import type { TokenStore } from './token-store.js';

/** Reason recorded in the metadata and the `revoked` event. */
export type RevokeReason = 'revoked_by_api' | 'revoked_by_cli';

/** What {@link revokeUser} needs. */
export interface RevokeUserInput {
  store: TokenStore;
  /** The IAM client, when a revocation endpoint is configured; revocation at the IAM is skipped otherwise. */
  iam?: IamClient;
  userId: string;
  reason: RevokeReason;
  logger?: { info(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  /** Times the read-revoke-delete cycle restarts when a refresh rotated the token meanwhile. @defaultValue 3 */
  maxAttempts?: number;
}

/** What {@link revokeUser} did. */
export interface RevokeUserResult {
  /** True when a refresh token was revoked at the IAM. */
  revokedAtIam: boolean;
  /** Metadata version after the write. */
  version: number;
}

/**
 * Revokes a user: revokes the stored refresh token at the IAM (RFC 7009, when `iam` can revoke),
 * then deletes the user's tokens, marking the metadata `revoked` and emitting the `revoked` event.
 *
 * The IAM is called first and the deletion is conditional on the version read, so nothing is lost
 * either way: an IAM failure (`iam_unavailable`, `client_misconfigured`) leaves the stored tokens
 * untouched for a retry, and a refresh that rotated the token meanwhile makes us start over with the
 * new one. Throws `not_found` for an unknown user. Revoking an already revoked user succeeds again.
 */
export async function revokeUser(input: RevokeUserInput): Promise<RevokeUserResult> {
  const { store, iam, userId, reason } = input;
  const maxAttempts = input.maxAttempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    // A set no key of ours decrypts any more (a retired key) cannot be revoked at the IAM, but it
    // can still be deleted here.
    const stored = await store.get(userId).catch((err: unknown) => {
      if (isTokexError(err, 'decrypt_failed')) return null;
      throw err;
    });
    const status = stored?.status ?? (await store.status(userId));
    if (!status) throw new TokexError('not_found', `no tokens stored for ${userId}`);
    let revokedAtIam = false;
    if (stored?.refreshToken && iam?.canRevoke) {
      await iam.revoke(stored.refreshToken);
      revokedAtIam = true;
    }
    try {
      const version = await store.end(userId, 'revoked', reason, status.version);
      input.logger?.info({ userId, revokedAtIam, version }, 'user revoked');
      return { revokedAtIam, version };
    } catch (err) {
      if (!isTokexError(err, 'stale_write') || attempt >= maxAttempts) throw err;
      input.logger?.debug({ userId, attempt }, 'token set changed while revoking; starting over');
    }
  }
}
