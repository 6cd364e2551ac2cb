import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/shared/config.js';
import { KeyRing } from '../src/shared/crypto.js';

const KEYS = KeyRing.generateSpec('k1');

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: KEYS } });
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.prefix).toBe('tokex');
    expect(config.iam).toMatchObject({ clientAuth: 'client_secret_post', scope: 'offline_access', timeoutMs: 10_000 });
    expect(config.exchange.concurrency).toBe(50);
    expect(config.logLevel).toBe('info');
    expect(config.exchange.allowPlaintextJobs).toBe(false);
    expect(config.keyRing.primary.id).toBe('k1');
  });

  it('accepts a hash-tagged prefix for Redis Cluster and an empty scope', () => {
    const config = loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: KEYS, TOKEX_PREFIX: '{tokex}', IAM_SCOPE: '' } });
    expect(config.prefix).toBe('{tokex}');
    expect(config.iam.scope).toBe('');
  });

  it('names every bad or missing variable at once', () => {
    let message = '';
    try {
      loadConfig({ env: { REDIS_URL: 'http://x', IAM_TIMEOUT_MS: 'soon', IAM_CLIENT_AUTH: 'magic' }, need: ['iam'] });
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code: string }).code).toBe('config_invalid');
    }
    for (const name of ['REDIS_URL', 'IAM_TIMEOUT_MS', 'IAM_CLIENT_AUTH', 'TOKEN_ENCRYPTION_KEYS']) expect(message).toContain(name);
  });

  it('requires the IAM variables only for roles that call the IAM', () => {
    expect(() => loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: KEYS } })).not.toThrow();
    expect(() => loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: KEYS }, need: ['iam'] }))
      .toThrow(/IAM_TOKEN_URL[\s\S]*IAM_CLIENT_ID[\s\S]*IAM_CLIENT_SECRET/);
  });

  it('stops on a malformed encryption key without echoing it', () => {
    const bad = 'k1:c2hvcnQ=';
    expect(() => loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: bad } })).toThrow(/TOKEN_ENCRYPTION_KEYS: key "k1": value must be base64 of exactly 32 bytes/);
  });
});
