import { TokexError } from '../shared/errors.js';

/** Reads `--name value` from `args`, or undefined. */
export function option(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  if (index < 0) return undefined;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) throw new TokexError('invalid_input', `${name} needs a value`);
  return value;
}
