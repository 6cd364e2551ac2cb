import type { Command } from '../cli.js';
import { ALL_ROLES, ROLE_STARTERS, startBroker, type RoleName } from '../broker.js';
import { loadConfig } from '../shared/config.js';
import { TokexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { onShutdownSignal } from '../worker/shutdown.js';
import { option } from './args.js';

/** `tokex start`: runs the broker's roles from the configuration until SIGTERM/SIGINT. */
export const command: Command = {
  summary: `Run the broker from the environment (.env is read too). Roles: ${ALL_ROLES.join(', ')}.`,
  usage: `tokex start [--roles ${ALL_ROLES.join(',')}]   (default: all)`,
  async run(args) {
    const roles = parseRoles(option(args, '--roles'));
    const needsIam = roles.some((r) => r !== ('producer' as RoleName) && r !== ('scheduler' as RoleName));
    const config = loadConfig({ need: needsIam ? ['iam'] : [] });
    const logger = createLogger({ level: config.logLevel });
    const broker = await startBroker(config, logger, roles);
    onShutdownSignal(() => broker.close(), logger);
    await new Promise(() => {}); // runs until a signal
    return 0;
  },
};

function parseRoles(value: string | undefined): RoleName[] {
  if (!value) return ALL_ROLES;
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  const unknown = roles.filter((r) => !(r in ROLE_STARTERS));
  if (unknown.length > 0 || roles.length === 0) {
    throw new TokexError('invalid_input', `unknown role(s) ${unknown.join(', ') || '(none)'}; choose from ${ALL_ROLES.join(', ')}`);
  }
  return roles as RoleName[];
}
