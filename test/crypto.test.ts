import { describe, expect, it } from 'vitest';
import { envelopeKeyId, KeyRing, SUBJECT_TOKEN_AAD, tokenSetAad } from '../src/shared/crypto.js';

const A = KeyRing.generateSpec('a');
const B = KeyRing.generateSpec('b');

describe('KeyRing', () => {
  it('round-trips with the primary key and records its id', () => {
    const ring = KeyRing.parse(`${A},${B}`);
    const sealed = ring.seal(Buffer.from('secret'), tokenSetAad('u1'));
    expect(envelopeKeyId(sealed)).toBe('a');
    expect(ring.open(sealed, tokenSetAad('u1')).toString()).toBe('secret');
    expect(sealed.includes(Buffer.from('secret'))).toBe(false);
  });

  it('decrypts with a secondary key so keys can rotate', () => {
    const old = KeyRing.parse(A).sealToString('tok', SUBJECT_TOKEN_AAD);
    expect(KeyRing.parse(`${B},${A}`).openString(old, SUBJECT_TOKEN_AAD)).toBe('tok');
  });

  it('refuses a ciphertext moved to another user (AAD)', () => {
    const ring = KeyRing.parse(A);
    const sealed = ring.seal(Buffer.from('secret'), tokenSetAad('alice'));
    expect(() => ring.open(sealed, tokenSetAad('mallory'))).toThrow(expect.objectContaining({ code: 'decrypt_failed' }));
  });

  it('refuses tampered ciphertext, unknown keys and truncated envelopes', () => {
    const ring = KeyRing.parse(A);
    const sealed = ring.seal(Buffer.from('secret'), 'x');
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] ^= 1;
    expect(() => ring.open(tampered, 'x')).toThrow(expect.objectContaining({ code: 'decrypt_failed' }));
    expect(() => KeyRing.parse(B).open(sealed, 'x')).toThrow(/no configured key has id "a"/);
    expect(() => ring.open(sealed.subarray(0, 10), 'x')).toThrow(expect.objectContaining({ code: 'decrypt_failed' }));
  });

  it.each([
    ['', /no key given/],
    ['nocolon', /expected keyId:base64/],
    ['a:dG9vc2hvcnQ=', /exactly 32 bytes/],
    [`${A},${A}`, /duplicate key id/],
    ['bad id:AAAA', /expected keyId:base64/],
  ])('rejects the key spec %j with a clear error', (spec, message) => {
    expect(() => KeyRing.parse(spec)).toThrow(message);
  });

  it('never echoes key material in errors', () => {
    const secret = Buffer.alloc(31, 7).toString('base64');
    expect(() => KeyRing.parse(`k:${secret}`)).toThrow(expect.objectContaining({ message: expect.not.stringContaining(secret) }));
  });
});
