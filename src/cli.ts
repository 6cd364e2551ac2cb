#!/usr/bin/env node
/**
 * `tokex`: the broker's command line. Each command lives in `src/cli/<name>.ts` and exports
 * `run(args)`; this file only dispatches. Errors print as one line and exit non-zero.
 */
import { isTokexError } from './shared/errors.js';

/** A CLI command. */
export interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./cli/start.js')).command,
  demo: async () => (await import('./cli/demo.js')).command,
  'dev-iam': async () => (await import('./cli/dev-iam.js')).command,
  keygen: async () => (await import('./cli/keygen.js')).command,
  revoke: async () => (await import('./cli/revoke.js')).command,
  token: async () => (await import('./cli/token.js')).command,
  stats: async () => (await import('./cli/stats.js')).command,
  rekey: async () => (await import('./cli/rekey.js')).command,
};

function printHelp(): void {
  const lines = ['Usage: tokex <command> [options]', '', 'Commands:'];
  for (const name of Object.keys(COMMANDS)) lines.push(`  ${name}`);
  lines.push('', 'Run `tokex <command> --help` for the options of a command.');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    printHelp();
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`tokex: unknown command "${name}" (see tokex --help)\n`);
    return 2;
  }
  const command = await load();
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${command.summary}\n\nUsage: ${command.usage}\n`);
    return 0;
  }
  return command.run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = isTokexError(err) ? `${err.code}: ${err.message}` : (err as Error)?.message ?? String(err);
    process.stderr.write(`tokex: ${message}\n`);
    process.exitCode = 1;
  },
);
