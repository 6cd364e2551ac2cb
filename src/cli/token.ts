import type { Command } from '../cli.js';
import { loadConfig } from '../shared/config.js';
import { createIamClient, createTokenStore } from '../shared/context.js';
import { TokexError } from '../shared/errors.js';
import { createFastFailConnection, waitUntilReady } from '../shared/redis.js';
import { option } from './args.js';

/**
 * `tokex token <userId>`: prints the user's token status (metadata only, JSON). With
 * `--access-token`, prints only a valid access token (refreshed on demand when IAM_* is configured),
 * for scripting. That output is a bearer credential: do not log it.
 */
export const command: Command = {
  summary: 'Show a user\'s token status (JSON, no token); --access-token prints a valid access token (SENSITIVE: a bearer credential).',
  usage: 'tokex token <userId> [--access-token [--min-validity <seconds>]]',
  async run(args) {
    const userId = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--min-validity');
    if (!userId) throw new TokexError('invalid_input', 'a userId is required: tokex token <userId>');
    const wantsToken = args.includes('--access-token');
    const minValidity = option(args, '--min-validity');
    const minValiditySeconds = minValidity === undefined ? 30 : Number(minValidity);
    if (!Number.isFinite(minValiditySeconds) || minValiditySeconds < 0) {
      throw new TokexError('invalid_input', '--min-validity must be a number of seconds >= 0');
    }
    const config = loadConfig();
    const redis = createFastFailConnection(config.redis);
    redis.on('error', () => {});
    try {
      await waitUntilReady(redis, 5000);
      const iam = wantsToken && config.iam.tokenUrl ? createIamClient(config) : undefined;
      const store = createTokenStore(config, redis, { iam });
      if (wantsToken) {
        process.stdout.write(`${await store.getAccessToken(userId, { minValiditySeconds })}\n`);
        return 0;
      }
      const status = await store.status(userId);
      if (!status) throw new TokexError('not_found', `no tokens stored for ${userId}`);
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return 0;
    } finally {
      redis.disconnect();
    }
  },
};
