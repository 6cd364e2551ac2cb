import type { Command } from '../cli.js';
import { KeyRing } from '../shared/crypto.js';

/** `tokex keygen`: prints a fresh TOKEN_ENCRYPTION_KEYS entry. */
export const command: Command = {
  summary: 'Print a fresh encryption key entry (keyId:base64-of-32-bytes) for TOKEN_ENCRYPTION_KEYS.',
  usage: 'tokex keygen [--id <keyId>]',
  async run(args) {
    const idIndex = args.indexOf('--id');
    const id = idIndex >= 0 ? args[idIndex + 1] : undefined;
    const spec = KeyRing.generateSpec(id);
    KeyRing.parse(spec); // validates a user-chosen id
    process.stdout.write(`${spec}\n`);
    return 0;
  },
};
