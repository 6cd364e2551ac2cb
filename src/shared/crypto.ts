import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TokexError } from './errors.js';

/**
 * Envelope encryption for tokens (AES-256-GCM).
 *
 * Binary envelope layout (version 1), used as-is for token sets in Redis:
 *
 * ```
 * byte 0        version = 0x01
 * byte 1        n = length of the key id in bytes (1..64)
 * bytes 2..     key id (UTF-8, n bytes)
 * next 12       IV (random per message)
 * next 16       GCM authentication tag
 * rest          ciphertext
 * ```
 *
 * Job data is JSON, so there the same bytes travel as `tkx1.` + base64url(envelope).
 * The additional authenticated data (AAD) binds a ciphertext to its purpose and owner:
 * see {@link tokenSetAad} and {@link SUBJECT_TOKEN_AAD}.
 */

const VERSION = 0x01;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Prefix of the string form of an envelope. */
export const ENVELOPE_STRING_PREFIX = 'tkx1.';
/** AAD of subject tokens in job data. */
export const SUBJECT_TOKEN_AAD = 'tokex/subject-token/v1';

/**
 * Random IVs drawn from a pooled buffer: one CSPRNG call per 256 messages instead of one each
 * (96-bit random IVs stay unique with overwhelming probability at our volumes).
 */
const IV_POOL_BYTES = IV_BYTES * 256;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;
function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

/** AAD of a user's stored token set: moving the ciphertext to another user fails authentication. */
export function tokenSetAad(userId: string): string {
  return `tokex/token-set/v1/${userId}`;
}

/** One AES-256 key and the id stored beside every ciphertext it makes. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

/** The configured keys: the first encrypts, every one decrypts (so keys can rotate). */
export class KeyRing {
  readonly primary: EncryptionKey;
  private readonly byId: Map<string, Buffer>;

  constructor(keys: EncryptionKey[]) {
    if (keys.length === 0) throw new TokexError('config_invalid', 'at least one encryption key is required');
    this.primary = keys[0];
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The ids of all keys, primary first. */
  get ids(): string[] {
    return [...this.byId.keys()];
  }

  /**
   * Parses `TOKEN_ENCRYPTION_KEYS`: comma-separated `keyId:base64-of-32-bytes`.
   * Throws `config_invalid` naming the bad entry (never echoing key material).
   */
  static parse(spec: string): KeyRing {
    const entries = spec.split(',').map((s) => s.trim()).filter(Boolean);
    if (entries.length === 0) throw new TokexError('config_invalid', 'no key given; expected keyId:base64-of-32-bytes[,…]');
    const seen = new Set<string>();
    const keys = entries.map((entry, index) => {
      const colon = entry.indexOf(':');
      const id = colon > 0 ? entry.slice(0, colon) : '';
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
        throw new TokexError('config_invalid', `key #${index + 1}: expected keyId:base64, the id being 1-64 of [A-Za-z0-9._-]`);
      }
      if (seen.has(id)) throw new TokexError('config_invalid', `key #${index + 1}: duplicate key id "${id}"`);
      seen.add(id);
      const b64 = entry.slice(colon + 1);
      const key = Buffer.from(b64, 'base64');
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64) || key.length !== KEY_BYTES) {
        throw new TokexError('config_invalid', `key "${id}": value must be base64 of exactly 32 bytes`);
      }
      return { id, key };
    });
    return new KeyRing(keys);
  }

  /** A fresh `keyId:base64` entry, as printed by `tokex keygen`. */
  static generateSpec(id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
    return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
  }

  /** Encrypts with the primary key into the binary envelope. */
  seal(plaintext: Buffer, aad: string): Buffer {
    const { id, key } = this.primary;
    const kid = Buffer.from(id, 'utf8');
    const iv = nextIv();
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION, kid.length]), kid, iv, cipher.getAuthTag(), ciphertext]);
  }

  /** Decrypts a binary envelope; `decrypt_failed` on unknown key, wrong AAD, tampering or bad layout. */
  open(envelope: Buffer, aad: string): Buffer {
    const { keyId, iv, tag, ciphertext } = parseEnvelope(envelope);
    const key = this.byId.get(keyId);
    if (!key) throw new TokexError('decrypt_failed', `no configured key has id "${keyId}"`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new TokexError('decrypt_failed', 'ciphertext failed authentication (wrong key, wrong owner or tampered)');
    }
  }

  /** Encrypts a string into the `tkx1.` string form used in job data. */
  sealToString(plaintext: string, aad: string): string {
    return ENVELOPE_STRING_PREFIX + this.seal(Buffer.from(plaintext, 'utf8'), aad).toString('base64url');
  }

  /** Decrypts the `tkx1.` string form. */
  openString(envelope: string, aad: string): string {
    if (!isEnvelopeString(envelope)) throw new TokexError('decrypt_failed', 'not a tkx1 envelope');
    return this.open(Buffer.from(envelope.slice(ENVELOPE_STRING_PREFIX.length), 'base64url'), aad).toString('utf8');
  }
}

/** True when `value` looks like the string form of an envelope (it is never a bearer token). */
export function isEnvelopeString(value: string): boolean {
  return value.startsWith(ENVELOPE_STRING_PREFIX);
}

/** The key id an envelope was sealed with (for re-keying). */
export function envelopeKeyId(envelope: Buffer): string {
  return parseEnvelope(envelope).keyId;
}

function parseEnvelope(envelope: Buffer): { keyId: string; iv: Buffer; tag: Buffer; ciphertext: Buffer } {
  if (envelope.length < 2 || envelope[0] !== VERSION) throw new TokexError('decrypt_failed', 'unknown envelope version');
  const kidLength = envelope[1];
  const ivStart = 2 + kidLength;
  const tagStart = ivStart + IV_BYTES;
  const dataStart = tagStart + TAG_BYTES;
  if (kidLength === 0 || envelope.length < dataStart) throw new TokexError('decrypt_failed', 'truncated envelope');
  return {
    keyId: envelope.subarray(2, ivStart).toString('utf8'),
    iv: envelope.subarray(ivStart, tagStart),
    tag: envelope.subarray(tagStart, dataStart),
    ciphertext: envelope.subarray(dataStart),
  };
}
