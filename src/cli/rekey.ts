import type { Command } from '../cli.js';
import { loadConfig } from '../shared/config.js';
import { TokexError } from '../shared/errors.js';
import { createFastFailConnection, waitUntilReady } from '../shared/redis.js';
import { rekey, type RekeyCounts, type RekeyProgress } from '../shared/rekey.js';
import { option } from './args.js';

/** `tokex rekey`: re-encrypts stored token sets and queued exchange jobs with the primary key. */
export const command: Command = {
  summary: [
    'Re-encrypt every stored token set and queued exchange job with the first key of',
    'TOKEN_ENCRYPTION_KEYS, so the other keys can be retired. Safe while the broker runs (values',
    'written meanwhile are left alone) and idempotent: run it again until it reports 0 left.',
  ].join('\n'),
  usage: 'tokex rekey [--resume-from <scan-cursor>] [--only token-sets|jobs] [--batch <n>]',
  async run(args) {
    const resumeFrom = option(args, '--resume-from');
    if (resumeFrom !== undefined && !/^\d+$/.test(resumeFrom)) {
      throw new TokexError('invalid_input', '--resume-from takes the numeric cursor printed by a previous run');
    }
    const only = option(args, '--only');
    if (only !== undefined && only !== 'token-sets' && only !== 'jobs') {
      throw new TokexError('invalid_input', '--only takes token-sets or jobs');
    }
    const batchText = option(args, '--batch');
    const batchSize = batchText === undefined ? 500 : Number(batchText);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
      throw new TokexError('invalid_input', '--batch takes an integer between 1 and 100000');
    }
    const config = loadConfig();
    const redis = createFastFailConnection(config.redis, { connectionName: 'tokex-rekey', maxRetriesPerRequest: 3 });
    redis.on('error', () => {});
    try {
      await waitUntilReady(redis, 5000);
      const others = config.keyRing.ids.slice(1);
      process.stdout.write(
        `rekey: primary key "${config.keyRing.primary.id}"; rewriting envelopes under ${others.length > 0 ? others.map((k) => `"${k}"`).join(', ') : 'any other key'}\n`,
      );
      const report = await rekey({
        redis, prefix: config.prefix, keyRing: config.keyRing, resumeFrom, batchSize, only: only as 'token-sets' | 'jobs' | undefined,
        onProgress: printProgress,
      });
      const left = report.tokenSets.changedMeanwhile + report.jobs.changedMeanwhile;
      const failed = report.tokenSets.failed + report.jobs.failed;
      if (failed > 0) {
        process.stderr.write(`tokex: ${failed} envelope(s) could not be decrypted with the configured keys and were left as they are\n`);
        return 1;
      }
      process.stdout.write(left > 0
        ? `rekey: ${left} value(s) changed while being rewritten; run tokex rekey again\n`
        : 'rekey: done; every envelope uses the primary key\n');
      return 0;
    } finally {
      redis.disconnect();
    }
  },
};

function printProgress(progress: RekeyProgress): void {
  const where = progress.phase === 'token-sets' && !progress.done ? ` (resume with --resume-from ${progress.cursor})` : '';
  process.stdout.write(`${progress.phase}: ${describe(progress.counts)}${progress.done ? ' — done' : where}\n`);
}

function describe(c: RekeyCounts): string {
  return `scanned ${c.scanned}, rekeyed ${c.rekeyed}, already primary/nothing to do ${c.skipped}, changed meanwhile ${c.changedMeanwhile}, undecryptable ${c.failed}`;
}
