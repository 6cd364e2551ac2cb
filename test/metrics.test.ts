import { describe, expect, it } from 'vitest';
import { TOKEX_ERROR_CODES } from '../src/shared/errors.js';
import { reasonCode } from '../src/shared/metrics.js';

describe('reasonCode (the bounded reason label of failed jobs)', () => {
  it('reads every error code the broker can fail a job with', () => {
    for (const code of TOKEX_ERROR_CODES) expect(reasonCode(`${code}: something happened`)).toBe(code);
    // Codes that the first hand-kept list missed.
    for (const code of ['revoked_meanwhile', 'refresh_in_flight', 'redis_rejected']) expect(reasonCode(`${code}: x`)).toBe(code);
  });

  it('names BullMQ stalls and counts anything else as unknown', () => {
    expect(reasonCode('job stalled more than allowable limit')).toBe('stalled');
    expect(reasonCode('TypeError: x is undefined')).toBe('unknown');
    expect(reasonCode('eyJhbGciOi: looks like a token')).toBe('unknown');
    expect(reasonCode(undefined)).toBe('unknown');
  });
});
