import type { Adapter, AdapterPayload } from 'oidc-provider';

/**
 * Per-instance in-memory storage for oidc-provider.
 *
 * Why not oidc-provider's bundled MemoryAdapter: it keeps one process-global
 * LRU capped at ~1000 entries shared by every provider instance, so under a
 * demo load grants and refresh tokens would be evicted silently (spurious
 * invalid_grant), and parallel test instances would share state. This one is
 * a plain Map per instance with lazy expiry plus a periodic sweep.
 */
export class MemoryStore {
  readonly #entries = new Map<string, { payload: AdapterPayload; expiresAt: number }>();
  readonly #grantIndex = new Map<string, Set<string>>();
  readonly #aliases = new Map<string, string>(); // sessionUid:/userCode: -> key

  get(key: string): AdapterPayload | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: AdapterPayload, expiresInSeconds: number): void {
    this.#entries.set(key, { payload, expiresAt: Date.now() + expiresInSeconds * 1000 });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  indexGrant(grantId: string, key: string): void {
    let keys = this.#grantIndex.get(grantId);
    if (!keys) {
      keys = new Set();
      this.#grantIndex.set(grantId, keys);
    }
    keys.add(key);
  }

  revokeGrant(grantId: string): void {
    for (const key of this.#grantIndex.get(grantId) ?? []) this.#entries.delete(key);
    this.#grantIndex.delete(grantId);
  }

  alias(alias: string, key: string): void {
    this.#aliases.set(alias, key);
  }

  resolveAlias(alias: string): string | undefined {
    return this.#aliases.get(alias);
  }

  /** Drops expired entries so a long-running demo does not grow without bound. */
  sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
    for (const [grantId, keys] of this.#grantIndex) {
      for (const key of keys) if (!this.#entries.has(key)) keys.delete(key);
      if (keys.size === 0) this.#grantIndex.delete(grantId);
    }
    for (const [alias, key] of this.#aliases) {
      if (!this.#entries.has(key)) this.#aliases.delete(alias);
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#grantIndex.clear();
    this.#aliases.clear();
  }
}

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

/** Adapter for one oidc-provider model over a shared {@link MemoryStore}. */
class StoreAdapter implements Adapter {
  constructor(private readonly store: MemoryStore, private readonly model: string) {}

  private key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.key(id);
    if (this.model === 'Session' && typeof payload.uid === 'string') {
      this.store.alias(`sessionUid:${payload.uid}`, key);
    }
    if (typeof payload.userCode === 'string') this.store.alias(`userCode:${payload.userCode}`, key);
    if (GRANTABLE.has(this.model) && typeof payload.grantId === 'string') {
      this.store.indexGrant(payload.grantId, key);
    }
    this.store.set(key, payload, expiresIn);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.store.get(this.key(id));
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const key = this.store.resolveAlias(`sessionUid:${uid}`);
    return key ? this.store.get(key) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const key = this.store.resolveAlias(`userCode:${userCode}`);
    return key ? this.store.get(key) : undefined;
  }

  async consume(id: string): Promise<void> {
    const payload = this.store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.store.revokeGrant(grantId);
  }
}

/** oidc-provider `adapter` factory (a plain function, called with the model name). */
export function adapterFactory(store: MemoryStore): (model: string) => Adapter {
  return (model: string) => new StoreAdapter(store, model);
}
