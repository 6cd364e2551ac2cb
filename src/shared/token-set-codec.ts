import { inflateRawSync } from 'node:zlib';
import { TokexError } from './errors.js';

/**
 * The plaintext of a stored token set (before AES-GCM; README, "Redis data format"). Each JWT is
 * split into its base64url segments and stored decoded; in the JSON ones (JOSE header, claims) the
 * claim names and values every Keycloak token repeats are replaced by one-byte codes from a fixed
 * dictionary ({@link JSON_DICTIONARY}). A Keycloak token pair takes 50–60 % of its text size, for
 * 9–10 µs of CPU per save on the benchmark machine. (Format 2, raw DEFLATE over the JSON segments,
 * took ~47 % but 17–24 µs: too much for the event loop that runs jobs; BENCHMARKS.md, "Exchange
 * throughput".)
 *
 * ```
 * byte 0        format: 3
 * then the access token, then the refresh token, each as:
 * kind u8       0 = absent, 1 = text, 2 = base64url segments (JWS/JWE compact form)
 * text:         length u32 (big-endian), then the UTF-8 bytes
 * segments:     count u8, then per segment: form u8 (0 = the decoded bytes; 1 = the decoded bytes
 *               with dictionary codes: each byte 0x00-0x1f stands for that entry of the dictionary),
 *               length u32, then the bytes
 * ```
 * A token is stored as segments only when every segment re-encodes to exactly its text (canonical
 * unpadded base64url), so decoding gives back the same string. Form 1 is used only for a segment that
 * starts with `{` and holds no byte below 0x20 (JSON never does: control characters are escaped), so
 * every such byte in the stored form is a code.
 *
 * A text token is stored as UTF-8, so a lone surrogate (not valid Unicode, never in a real token)
 * would come back as U+FFFD.
 *
 * Token sets written by earlier versions are still read: format 2 (the same segments, JSON ones raw
 * DEFLATE-compressed together) and format 1 (raw DEFLATE of the JSON `{"accessToken","refreshToken"}`:
 * any other first byte; a raw DEFLATE stream whose first byte is 2 or 3 opens with an empty
 * fixed-Huffman block or is invalid, which zlib never writes). Each is rewritten in format 3 by its
 * user's next refresh or exchange.
 */

/** The plaintext's format byte. */
export const TOKEN_SET_FORMAT = 3;

/** The tokens inside a token set envelope. */
export interface TokenSetPlaintext {
  accessToken: string;
  refreshToken?: string;
}

/**
 * Format 3's dictionary: byte `i` (0x00-0x1f) in a form-1 segment stands for entry `i`. Claim names
 * and values of Keycloak's access and refresh tokens (its JOSE headers are written with spaces around
 * two of the colons; an offline refresh token has no `exp` and starts with `iat`). Fixed forever: a
 * new dictionary needs a new format byte.
 */
export const JSON_DICTIONARY: readonly string[] = Object.freeze([
  '{"alg":"RS256","typ" : "JWT","kid" : "',
  '{"alg":"HS512","typ" : "JWT","kid" : "',
  '{"exp":',
  '{"iat":',
  ',"iat":',
  ',"auth_time":',
  ',"jti":"',
  ',"iss":"http',
  ',"aud":',
  ',"sub":"',
  ',"typ":"Bearer","azp":"',
  ',"typ":"Offline","azp":"',
  ',"typ":"Refresh","azp":"',
  ',"session_state":"',
  ',"acr":"',
  ',"allowed-origins":[',
  ',"realm_access":{"roles":[',
  '"offline_access"',
  '"uma_authorization"',
  '"default-roles-',
  ',"resource_access":{"account":{"roles":["manage-account","manage-account-links","view-profile"]}}',
  ',"scope":"',
  'openid',
  ' profile',
  ' email',
  ',"sid":"',
  ',"email_verified":',
  ',"name":"',
  ',"preferred_username":"',
  ',"given_name":"',
  ',"family_name":"',
  ',"email":"',
]);

const KIND_ABSENT = 0;
const KIND_TEXT = 1;
const KIND_SEGMENTS = 2;
const FORM_BYTES = 0;
const FORM_CODED = 1;
const MAX_SEGMENTS = 5;
const OPEN_BRACE = 0x7b;
const FORMAT_2 = 2;
/** Inflating an older token set stops here (a token pair is a few kilobytes). */
const INFLATE_OPTIONS = { maxOutputLength: 1 << 20 };

/** Longest entries first, so that an entry wins over the shorter ones it contains. */
const ENTRY_PATTERN = new RegExp(
  [...JSON_DICTIONARY].sort((a, b) => b.length - a.length).map((e) => e.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'),
  'g',
);
const CODE_OF = new Map(JSON_DICTIONARY.map((entry, code) => [entry, String.fromCharCode(code)]));
const CONTROL_BYTE = /[\x00-\x1f]/;
const CODE_BYTES = /[\x00-\x1f]/g;

/** Serialises a token set's tokens (see the module comment for the layout). */
export function encodeTokenSet(plaintext: TokenSetPlaintext): Buffer {
  const tokens = [storedForm(plaintext.accessToken), storedForm(plaintext.refreshToken)];
  let size = 1;
  for (const t of tokens) {
    size += 1;
    if (t.kind === KIND_TEXT) size += 4 + t.utf8.length;
    if (t.kind === KIND_SEGMENTS) size += 1 + t.parts.reduce((sum, part) => sum + 5 + part.bytes.length, 0);
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt8(TOKEN_SET_FORMAT, 0);
  for (const t of tokens) {
    at = out.writeUInt8(t.kind, at);
    if (t.kind === KIND_TEXT) {
      at = out.writeUInt32BE(t.utf8.length, at);
      at += t.utf8.copy(out, at);
    } else if (t.kind === KIND_SEGMENTS) {
      at = out.writeUInt8(t.parts.length, at);
      for (const part of t.parts) {
        at = out.writeUInt8(part.form, at);
        at = out.writeUInt32BE(part.bytes.length, at);
        at += part.bytes.copy(out, at);
      }
    }
  }
  if (at !== size) throw new Error(`token set layout: wrote ${at} of ${size} bytes`);
  return out;
}

type StoredToken =
  | { kind: typeof KIND_ABSENT }
  | { kind: typeof KIND_TEXT; utf8: Buffer }
  | { kind: typeof KIND_SEGMENTS; parts: { form: number; bytes: Buffer }[] };

function storedForm(token: string | undefined): StoredToken {
  if (token === undefined) return { kind: KIND_ABSENT };
  const segments = segmentsOf(token);
  if (segments === undefined) return { kind: KIND_TEXT, utf8: Buffer.from(token, 'utf8') };
  return {
    kind: KIND_SEGMENTS,
    parts: segments.map((bytes) => {
      const coded = bytes[0] === OPEN_BRACE ? withCodes(bytes) : undefined;
      return coded ? { form: FORM_CODED, bytes: coded } : { form: FORM_BYTES, bytes };
    }),
  };
}

/** The decoded segments, when every one is canonical unpadded base64url (so they re-encode exactly). */
function segmentsOf(token: string): Buffer[] | undefined {
  const segments = token.split('.');
  if (segments.length < 2 || segments.length > MAX_SEGMENTS) return undefined;
  const decoded = segments.map((s) => Buffer.from(s, 'base64url'));
  return decoded.every((bytes, i) => bytes.toString('base64url') === segments[i]) ? decoded : undefined;
}

/** `bytes` with dictionary entries replaced by their codes, or undefined when it holds a control byte. */
function withCodes(bytes: Buffer): Buffer | undefined {
  const text = bytes.toString('latin1');
  if (CONTROL_BYTE.test(text)) return undefined;
  return Buffer.from(text.replace(ENTRY_PATTERN, (entry) => CODE_OF.get(entry)!), 'latin1');
}

/**
 * Parses what {@link encodeTokenSet} wrote (or a format 2 or 1 token set); anything else throws
 * `decrypt_failed` (the plaintext authenticated, so this means a format this version does not know).
 */
export function decodeTokenSet(data: Buffer): TokenSetPlaintext {
  try {
    if (data[0] === TOKEN_SET_FORMAT) return decodeFormat3(data);
    return data[0] === FORMAT_2 ? decodeFormat2(data) : decodeFormat1(data);
  } catch (err) {
    throw new TokexError('decrypt_failed', `token set plaintext is not in a known layout (${(err as Error).message})`);
  }
}

function decodeFormat3(data: Buffer): TokenSetPlaintext {
  const reader = new Reader(data.subarray(1));
  return readTokenPair(reader, () => {
    const form = reader.u8();
    if (form !== FORM_BYTES && form !== FORM_CODED) throw new Error(`unknown segment form ${form}`);
    const stored = reader.bytes(reader.u32());
    return form === FORM_CODED ? withEntries(stored) : stored;
  }, () => reader.done());
}

/** Form 1's bytes with each code replaced by its dictionary entry. */
function withEntries(stored: Buffer): Buffer {
  return Buffer.from(stored.toString('latin1').replace(CODE_BYTES, (code) => JSON_DICTIONARY[code.charCodeAt(0)]), 'latin1');
}

/** Format 2: a u32 length P, P bytes of raw DEFLATE (the "text stream"), then the "binary tail". */
function decodeFormat2(data: Buffer): TokenSetPlaintext {
  if (data.length < 5) throw new Error('truncated token set');
  const packedEnd = 5 + data.readUInt32BE(1);
  if (packedEnd > data.length) throw new Error('truncated token set');
  const text = new Reader(inflateRawSync(data.subarray(5, packedEnd), INFLATE_OPTIONS));
  const tail = new Reader(data.subarray(packedEnd));
  return readTokenPair(text, () => {
    const where = text.u8(); // 0: inline in the text stream, 1: next in the tail
    if (where !== 0 && where !== 1) throw new Error(`unknown segment place ${where}`);
    const length = text.u32();
    return (where === 0 ? text : tail).bytes(length);
  }, () => text.done() && tail.done());
}

/**
 * The access and refresh token as formats 2 and 3 lay them out in `stream` (kind, then text or
 * segments); `segment` reads one segment's decoded bytes, which is where the formats differ.
 */
function readTokenPair(stream: Reader, segment: () => Buffer, done: () => boolean): TokenSetPlaintext {
  const readToken = (): string | undefined => {
    const kind = stream.u8();
    if (kind === KIND_ABSENT) return undefined;
    if (kind === KIND_TEXT) return stream.bytes(stream.u32()).toString('utf8');
    if (kind !== KIND_SEGMENTS) throw new Error(`unknown token kind ${kind}`);
    const parts: string[] = [];
    for (let count = stream.u8(); count > 0; count -= 1) parts.push(segment().toString('base64url'));
    return parts.join('.');
  };
  const accessToken = readToken();
  const refreshToken = readToken();
  if (accessToken === undefined || !done()) throw new Error('malformed token set');
  return refreshToken === undefined ? { accessToken } : { accessToken, refreshToken };
}

function decodeFormat1(data: Buffer): TokenSetPlaintext {
  const parsed = JSON.parse(inflateRawSync(data, INFLATE_OPTIONS).toString('utf8')) as Partial<TokenSetPlaintext>;
  if (typeof parsed.accessToken !== 'string') throw new Error('malformed token set');
  return typeof parsed.refreshToken === 'string'
    ? { accessToken: parsed.accessToken, refreshToken: parsed.refreshToken }
    : { accessToken: parsed.accessToken };
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
