import type { DevIamFaults, DevIamStats } from './types.js';

/** A fault to answer with instead of letting oidc-provider handle the call. */
export interface Fault {
  status: number;
  headers: Record<string, string>;
  /** JSON body, or undefined for an empty body (502/504 from a gateway). */
  body?: { error: string; error_description: string };
}

const DESCRIPTIONS: Record<number, string> = {
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
  504: 'Gateway timeout',
};

/** Fault switches: queued failures, rate limits and added latency. */
export class FaultState implements DevIamFaults {
  #failCount = 0;
  #failStatus = 503;
  #rateLimitCount = 0;
  #retryAfter = '1';
  #latencyMs = 0;

  failNext(count: number, status = 503): void {
    this.#failCount = Math.max(0, Math.floor(count));
    this.#failStatus = status;
  }

  rateLimitNext(count: number, retryAfter: string): void {
    this.#rateLimitCount = Math.max(0, Math.floor(count));
    this.#retryAfter = retryAfter;
  }

  setLatencyMs(ms: number): void {
    this.#latencyMs = Math.max(0, ms);
  }

  reset(): void {
    this.#failCount = 0;
    this.#failStatus = 503;
    this.#rateLimitCount = 0;
    this.#latencyMs = 0;
  }

  get latencyMs(): number {
    return this.#latencyMs;
  }

  /** Consumes and returns the next queued fault, if any (rate limits first). */
  take(): Fault | undefined {
    if (this.#rateLimitCount > 0) {
      this.#rateLimitCount -= 1;
      return {
        status: 429,
        headers: { 'Retry-After': this.#retryAfter },
        body: { error: 'rate_limited', error_description: 'Too many requests' },
      };
    }
    if (this.#failCount > 0) {
      this.#failCount -= 1;
      const status = this.#failStatus;
      if (status === 502 || status === 504) return { status, headers: {} };
      const error = status === 503 ? 'temporarily_unavailable' : status >= 500 ? 'unknown_error' : 'invalid_request';
      return {
        status,
        headers: {},
        body: { error, error_description: DESCRIPTIONS[status] ?? `Injected failure (${status})` },
      };
    }
    return undefined;
  }
}

/** Endpoint a call was made to, for the stats. */
export type Endpoint = 'token' | 'introspection' | 'revocation';

const GRANT_COUNTERS: Record<string, 'exchange' | 'refresh' | 'password'> = {
  'urn:ietf:params:oauth:grant-type:token-exchange': 'exchange',
  refresh_token: 'refresh',
  password: 'password',
};

/** Live counters exposed as `DevIam.stats`. */
export class StatsCounter {
  readonly stats: DevIamStats = StatsCounter.#empty();

  static #empty(): DevIamStats {
    return { exchange: 0, refresh: 0, password: 0, introspection: 0, revocation: 0, errors: {} };
  }

  /** Counts a call by endpoint (and grant type for the token endpoint). */
  call(endpoint: Endpoint, grantType: string | undefined): void {
    if (endpoint === 'introspection' || endpoint === 'revocation') {
      this.stats[endpoint] += 1;
      return;
    }
    const counter = grantType ? GRANT_COUNTERS[grantType] : undefined;
    if (counter) this.stats[counter] += 1;
  }

  error(code: string): void {
    this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
  }

  /** Resets in place: callers may hold a reference to `stats`. */
  reset(): void {
    Object.assign(this.stats, StatsCounter.#empty());
  }
}
