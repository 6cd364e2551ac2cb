import { constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { TokexError } from './errors.js';

/**
 * The plaintext of a stored token set (before AES-GCM; README, "Redis data format"). Each JWT is
 * split into its base64url segments, decoded: the JSON ones (JOSE header, claims) are compressed
 * together with raw DEFLATE, the signatures (random bytes DEFLATE cannot shrink) are appended as
 * they are. A Keycloak token pair takes ~45 % of its text size, for ~19 µs of CPU per save
 * (DEFLATE over the token text: ~61 % for ~31 µs; decoded segments alone: ~76 % for ~4 µs).
 *
 * ```
 * byte 0        format: 2
 * bytes 1-4     P: length (u32 big-endian) of the compressed block
 * next P bytes  raw DEFLATE (RFC 1951) of the "text stream"
 * the rest      the "binary tail"
 * ```
 * The text stream holds the access token, then the refresh token, each as:
 * ```
 * kind u8       0 = absent, 1 = text, 2 = base64url segments (JWS/JWE compact form)
 * text:         length u32, then the UTF-8 bytes
 * segments:     count u8, then per segment: where u8 (0 = inline, next in the text stream;
 *               1 = next in the binary tail), length u32, then (inline only) the decoded bytes
 * ```
 * A token is stored as segments only when every segment re-encodes to exactly its text (canonical
 * unpadded base64url), so decoding gives back the same string.
 *
 * Token sets written before this layout (format 1: raw DEFLATE of the JSON
 * `{"accessToken","refreshToken"}`) are still read; they are rewritten in this layout by their next
 * refresh. A single raw-DEFLATE block starts with an odd byte (its final-block bit), never with 2.
 */

/** The plaintext's format byte. */
export const TOKEN_SET_FORMAT = 2;

/** The tokens inside a token set envelope. */
export interface TokenSetPlaintext {
  accessToken: string;
  refreshToken?: string;
}

const KIND_ABSENT = 0;
const KIND_TEXT = 1;
const KIND_SEGMENTS = 2;
const INLINE = 0;
const TAIL = 1;
const MAX_SEGMENTS = 5;
const OPEN_BRACE = 0x7b;

/**
 * Fastest level, a 2 KiB window (the text stream is about a kilobyte) and memory level 4: one
 * DEFLATE block for a kilobyte of input, and a ~10 KB compressor state instead of ~50 KB with the
 * defaults. zlib sets up that state on every call: measured in the exchange benchmark, the smaller
 * state costs ~10 µs less per token write, for the same output within a few bytes.
 */
const DEFLATE_OPTIONS = { level: zlibConstants.Z_BEST_SPEED, windowBits: 11, memLevel: 4 };
/** Inflating needs a window at least as large as the one compressed with (and 15 reads them all). */
const INFLATE_OPTIONS = { windowBits: 15 };

/** Serialises a token set's tokens (see the module comment for the layout). */
export function encodeTokenSet(plaintext: TokenSetPlaintext): Buffer {
  const tokens = [splitToken(plaintext.accessToken), splitToken(plaintext.refreshToken)];
  let textSize = 0;
  const tail: Buffer[] = [];
  for (const t of tokens) {
    textSize += 1;
    if (t.kind === KIND_TEXT) textSize += 4 + t.utf8.length;
    if (t.kind !== KIND_SEGMENTS) continue;
    textSize += 1;
    for (const part of t.parts) textSize += 5 + (isInline(part) ? part.length : 0);
  }
  const text = Buffer.allocUnsafe(textSize);
  let at = 0;
  for (const t of tokens) {
    at = text.writeUInt8(t.kind, at);
    if (t.kind === KIND_TEXT) {
      at = text.writeUInt32BE(t.utf8.length, at);
      at += t.utf8.copy(text, at);
    } else if (t.kind === KIND_SEGMENTS) {
      at = text.writeUInt8(t.parts.length, at);
      for (const part of t.parts) {
        const inline = isInline(part);
        at = text.writeUInt8(inline ? INLINE : TAIL, at);
        at = text.writeUInt32BE(part.length, at);
        if (inline) at += part.copy(text, at);
        else tail.push(part);
      }
    }
  }
  if (at !== textSize) throw new Error(`token set layout: wrote ${at} of ${textSize} bytes`);
  const packed = deflateRawSync(text, DEFLATE_OPTIONS);
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(TOKEN_SET_FORMAT, 0);
  head.writeUInt32BE(packed.length, 1);
  return Buffer.concat([head, packed, ...tail]);
}

/**
 * Parses what {@link encodeTokenSet} wrote (or a format-1 token set); anything else throws
 * `decrypt_failed` (the plaintext authenticated, so this means a format this version does not know).
 */
export function decodeTokenSet(data: Buffer): TokenSetPlaintext {
  try {
    return data[0] === TOKEN_SET_FORMAT ? decodeFormat2(data) : decodeFormat1(data);
  } catch (err) {
    throw new TokexError('decrypt_failed', `token set plaintext is not in a known layout (${(err as Error).message})`);
  }
}

function decodeFormat2(data: Buffer): TokenSetPlaintext {
  if (data.length < 5) throw new Error('truncated token set');
  const packedEnd = 5 + data.readUInt32BE(1);
  if (packedEnd > data.length) throw new Error('truncated token set');
  const text = new Reader(inflateRawSync(data.subarray(5, packedEnd), INFLATE_OPTIONS));
  const tail = new Reader(data.subarray(packedEnd));
  const readToken = (): string | undefined => {
    const kind = text.u8();
    if (kind === KIND_ABSENT) return undefined;
    if (kind === KIND_TEXT) return text.bytes(text.u32()).toString('utf8');
    if (kind !== KIND_SEGMENTS) throw new Error(`unknown token kind ${kind}`);
    const parts: string[] = [];
    for (let count = text.u8(); count > 0; count -= 1) {
      const where = text.u8();
      if (where !== INLINE && where !== TAIL) throw new Error(`unknown segment place ${where}`);
      const length = text.u32();
      parts.push((where === INLINE ? text : tail).bytes(length).toString('base64url'));
    }
    return parts.join('.');
  };
  const accessToken = readToken();
  const refreshToken = readToken();
  if (accessToken === undefined || !text.done() || !tail.done()) throw new Error('malformed token set');
  return refreshToken === undefined ? { accessToken } : { accessToken, refreshToken };
}

function decodeFormat1(data: Buffer): TokenSetPlaintext {
  const parsed = JSON.parse(inflateRawSync(data, INFLATE_OPTIONS).toString('utf8')) as Partial<TokenSetPlaintext>;
  if (typeof parsed.accessToken !== 'string') throw new Error('malformed token set');
  return typeof parsed.refreshToken === 'string'
    ? { accessToken: parsed.accessToken, refreshToken: parsed.refreshToken }
    : { accessToken: parsed.accessToken };
}

type SplitToken =
  | { kind: typeof KIND_ABSENT }
  | { kind: typeof KIND_TEXT; utf8: Buffer }
  | { kind: typeof KIND_SEGMENTS; parts: Buffer[] };

function splitToken(token: string | undefined): SplitToken {
  if (token === undefined) return { kind: KIND_ABSENT };
  const segments = token.split('.');
  if (segments.length >= 2 && segments.length <= MAX_SEGMENTS) {
    const parts = segments.map((s) => Buffer.from(s, 'base64url'));
    if (parts.every((p, i) => p.toString('base64url') === segments[i])) return { kind: KIND_SEGMENTS, parts };
  }
  return { kind: KIND_TEXT, utf8: Buffer.from(token, 'utf8') };
}

/** JSON (JOSE header, claims) compresses; signatures and encrypted parts are random bytes. */
function isInline(part: Buffer): boolean {
  return part[0] === OPEN_BRACE;
}

/** Sequential reads that throw past the end. */
class Reader {
  private at = 0;
  constructor(private readonly data: Buffer) {}
  u8(): number {
    return this.bytes(1)[0];
  }
  u32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  bytes(length: number): Buffer {
    if (this.at + length > this.data.length) throw new Error('truncated token set');
    const slice = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return slice;
  }
  done(): boolean {
    return this.at === this.data.length;
  }
}
