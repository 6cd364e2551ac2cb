import { Queue } from 'bullmq';
import type { JobType } from 'bullmq';
import {
  ENVELOPE_STRING_PREFIX, envelopeKeyId, isEnvelopeString, SUBJECT_TOKEN_AAD, tokenSetAad, type KeyRing,
} from './crypto.js';
import { isTokexError } from './errors.js';
import { EXCHANGE_QUEUE } from './job-contract.js';
import { KeyLayout } from './keys.js';
import { asRedisError, nodeForKey, type RedisClient } from './redis.js';
import { scripts } from './scripts.js';

/**
 * Re-encryption of everything the broker stores under an encryption key other than the primary
 * (the first of TOKEN_ENCRYPTION_KEYS), so an old key can be retired:
 *
 * - token sets (`<prefix>:tok:<userId>`), found by SCAN over the metadata keys;
 * - the subject tokens of exchange jobs in every state that keeps job data.
 *
 * Each rewrite is a compare-and-set (`replace-if-equal-1.lua`): the new ciphertext replaces the old
 * one only if the stored value is still the one that was read, so a worker writing a fresh token
 * set (or the worker rewriting a job) at the same moment always wins. Envelopes already under the
 * primary key are skipped, which makes a run idempotent: run it again until it reports nothing left.
 */

/** Exchange-job states whose data may hold a subject token envelope. */
export const REKEY_JOB_STATES: readonly JobType[] = [
  'waiting', 'prioritized', 'delayed', 'active', 'waiting-children', 'failed', 'completed',
];

/** Counters of one part of a rekey run. */
export interface RekeyCounts {
  /** Items looked at. */
  scanned: number;
  /** Re-encrypted with the primary key. */
  rekeyed: number;
  /** Already under the primary key (or nothing encrypted to rewrite). */
  skipped: number;
  /** Changed by someone else between read and write: left as is (the writer used its own key). */
  changedMeanwhile: number;
  /** Could not be decrypted (unknown key id, failed authentication, unreadable data): left as is. */
  failed: number;
}

/** What a rekey run did. */
export interface RekeyReport {
  primaryKeyId: string;
  tokenSets: RekeyCounts;
  jobs: RekeyCounts;
}

/** A progress notice, emitted every `progressEvery` items and at the end of each phase. */
export interface RekeyProgress {
  phase: 'token-sets' | 'jobs';
  counts: RekeyCounts;
  /** The SCAN cursor of the token-set phase after the last full batch (`--resume-from` value). */
  cursor: string;
  done: boolean;
}

/** Options of {@link rekey}. */
export interface RekeyOptions {
  redis: RedisClient;
  prefix: string;
  keyRing: KeyRing;
  /** SCAN cursor to continue the token-set phase from (printed in progress lines). @defaultValue '0' */
  resumeFrom?: string;
  /** SCAN COUNT hint and job page size. @defaultValue 500 */
  batchSize?: number;
  /** Called with progress. */
  onProgress?: (progress: RekeyProgress) => void;
  /** Items between progress notices. @defaultValue 1000 */
  progressEvery?: number;
  /** Skip the token sets or the jobs. */
  only?: 'token-sets' | 'jobs';
}

const emptyCounts = (): RekeyCounts => ({ scanned: 0, rekeyed: 0, skipped: 0, changedMeanwhile: 0, failed: 0 });

/** Re-encrypts every token set and queued exchange job that is not under the primary key. */
export async function rekey(options: RekeyOptions): Promise<RekeyReport> {
  const report: RekeyReport = { primaryKeyId: options.keyRing.primary.id, tokenSets: emptyCounts(), jobs: emptyCounts() };
  if (options.only !== 'jobs') report.tokenSets = await rekeyTokenSets(options);
  if (options.only !== 'token-sets') report.jobs = await rekeyExchangeJobs(options);
  return report;
}

/** The token-set phase of {@link rekey}. */
export async function rekeyTokenSets(options: RekeyOptions): Promise<RekeyCounts> {
  const { redis, keyRing } = options;
  const keys = new KeyLayout(options.prefix);
  const batchSize = options.batchSize ?? 500;
  const every = options.progressEvery ?? 1000;
  const counts = emptyCounts();
  let cursor = options.resumeFrom ?? '0';
  let nextNotice = every;
  try {
    do {
      const [next, metaKeys] = await (await nodeForKey(redis, keys.metaPattern)).scan(cursor, 'MATCH', keys.metaPattern, 'COUNT', batchSize);
      for (const metaKey of metaKeys) {
        const userId = keys.userIdFromMetaKey(metaKey);
        counts.scanned += 1;
        counts[await rekeyTokenSet(redis, keyRing, keys.tokens(userId), userId)] += 1;
      }
      cursor = next;
      if (counts.scanned >= nextNotice) {
        nextNotice = counts.scanned + every;
        options.onProgress?.({ phase: 'token-sets', counts: { ...counts }, cursor, done: false });
      }
    } while (cursor !== '0');
  } catch (err) {
    throw asRedisError(err);
  }
  options.onProgress?.({ phase: 'token-sets', counts: { ...counts }, cursor: '0', done: true });
  return counts;
}

type Outcome = Exclude<keyof RekeyCounts, 'scanned'>;

async function rekeyTokenSet(redis: RedisClient, keyRing: KeyRing, tokensKey: string, userId: string): Promise<Outcome> {
  const envelope = await redis.getBuffer(tokensKey);
  if (!envelope) return 'skipped'; // metadata of an ended user: no tokens kept
  let fresh: Buffer;
  try {
    if (envelopeKeyId(envelope) === keyRing.primary.id) return 'skipped';
    const aad = tokenSetAad(userId);
    // The plaintext bytes are re-sealed as they are: the stored format does not change.
    fresh = keyRing.seal(keyRing.open(envelope, aad), aad);
  } catch (err) {
    if (isTokexError(err, 'decrypt_failed')) return 'failed';
    throw err;
  }
  const replaced = await scripts.replaceIfEqual.run<number>(redis, [tokensKey], [envelope, fresh, '']);
  return replaced === 1 ? 'rekeyed' : 'changedMeanwhile';
}

/** The job phase of {@link rekey}: subject-token envelopes of exchange jobs. */
export async function rekeyExchangeJobs(options: RekeyOptions): Promise<RekeyCounts> {
  const { redis, keyRing } = options;
  const batchSize = options.batchSize ?? 500;
  const every = options.progressEvery ?? 1000;
  const counts = emptyCounts();
  const queue = new Queue(EXCHANGE_QUEUE, { connection: redis, prefix: options.prefix });
  queue.on('error', () => {});
  let nextNotice = every;
  try {
    for (const state of REKEY_JOB_STATES) {
      // Jobs moving between states meanwhile may be missed or seen twice: seen twice is a skip,
      // missed is caught by the next run (the command says how many remain).
      for (let start = 0; ; start += batchSize) {
        const ids = await queue.getRanges([state], start, start + batchSize - 1, true);
        if (ids.length === 0) break;
        for (const id of ids) {
          counts.scanned += 1;
          counts[await rekeyJob(redis, keyRing, queue.toKey(id))] += 1;
        }
        if (counts.scanned >= nextNotice) {
          nextNotice = counts.scanned + every;
          options.onProgress?.({ phase: 'jobs', counts: { ...counts }, cursor: '0', done: false });
        }
        if (ids.length < batchSize) break;
      }
    }
  } catch (err) {
    throw asRedisError(err);
  } finally {
    await queue.close().catch(() => {});
  }
  options.onProgress?.({ phase: 'jobs', counts: { ...counts }, cursor: '0', done: true });
  return counts;
}

async function rekeyJob(redis: RedisClient, keyRing: KeyRing, jobKey: string): Promise<Outcome> {
  const raw = await redis.hget(jobKey, 'data');
  if (raw === null) return 'skipped'; // removed meanwhile
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return 'failed';
  }
  const token = data?.subjectToken;
  // Plaintext jobs (ALLOW_PLAINTEXT_JOBS) and scrubbed ones carry nothing encrypted to rewrite.
  if (typeof token !== 'string' || !isEnvelopeString(token)) return 'skipped';
  let fresh: string;
  try {
    const envelope = Buffer.from(token.slice(ENVELOPE_STRING_PREFIX.length), 'base64url');
    if (envelopeKeyId(envelope) === keyRing.primary.id) return 'skipped';
    fresh = keyRing.sealToString(keyRing.openString(token, SUBJECT_TOKEN_AAD), SUBJECT_TOKEN_AAD);
  } catch (err) {
    if (isTokexError(err, 'decrypt_failed')) return 'failed';
    throw err;
  }
  const replaced = await scripts.replaceIfEqual.run<number>(
    redis, [jobKey], [raw, JSON.stringify({ ...data, subjectToken: fresh }), 'data'],
  );
  return replaced === 1 ? 'rekeyed' : 'changedMeanwhile';
}
