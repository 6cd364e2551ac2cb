import type { Command } from '../cli.js';
import { loadConfig } from '../shared/config.js';
import { createContext } from '../shared/context.js';
import { TokexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { waitUntilReady } from '../shared/redis.js';
import { revokeUser } from '../shared/revoke-user.js';

/**
 * `tokex revoke <userId>`: what `DELETE /v1/users/:userId/tokens` does, from a shell: revokes the
 * refresh token at IAM_REVOCATION_URL (when set), then deletes the user's tokens (state `revoked`).
 */
export const command: Command = {
  summary: 'Revoke a user: revoke the refresh token at IAM_REVOCATION_URL (when set) and delete the stored tokens.',
  usage: 'tokex revoke <userId>',
  async run(args) {
    const userIds = args.filter((a) => !a.startsWith('--'));
    if (userIds.length !== 1) throw new TokexError('invalid_input', 'exactly one userId is required: tokex revoke <userId>');
    const userId = userIds[0] as string;
    const config = loadConfig();
    const ctx = createContext(config, createLogger({ level: 'silent' }));
    try {
      await waitUntilReady(ctx.clientConnection, 5000);
      const { revokedAtIam, version } = await revokeUser({
        store: ctx.store,
        iam: config.iam.revocationUrl ? ctx.iam() : undefined,
        userId,
        reason: 'revoked_by_cli',
      });
      const how = revokedAtIam ? 'refresh token revoked at the IAM' : config.iam.revocationUrl ? 'no refresh token was stored' : 'IAM_REVOCATION_URL unset: not revoked at the IAM';
      process.stdout.write(`revoked ${userId} (${how}; version ${version})\n`);
      return 0;
    } finally {
      await ctx.close();
    }
  },
};
