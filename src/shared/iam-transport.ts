import { AxiosError, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { Agent } from 'undici';

/** Largest IAM answer read; a token response is a few KiB. */
export const MAX_IAM_RESPONSE_BYTES = 1024 * 1024;

/** Connections kept per IAM origin; further requests wait for one. */
export const CONNECTIONS_PER_ORIGIN = 256;

/** An axios adapter over an undici connection pool, and the pool's close. */
export interface IamTransport {
  adapter: AxiosAdapter;
  /** Closes the pooled connections; in-flight requests finish first. */
  close(): Promise<void>;
}

/**
 * The axios transport of the IAM client: requests go through an undici keep-alive pool instead
 * of axios's Node `http` adapter. Measured on the benchmark machine (token-endpoint POST, 50 in
 * flight): ~63 µs of CPU per call against ~136 µs with the `http` adapter, the largest single
 * saving per exchange (BENCHMARKS.md, "Exchange throughput").
 *
 * It honours what the IAM client uses of an axios request, and only that: an absolute `url`
 * (credentials in it are not sent), method, headers, a string or Buffer body, `timeout` (the whole
 * request, body included), `signal` and `validateStatus`. Redirects are never followed, no proxy is
 * used, and responses are read as UTF-8 text (no `Accept-Encoding` is sent). Errors are
 * `AxiosError`s with axios's codes (`ETIMEDOUT`, `ERR_CANCELED`, the socket's code such as
 * `ECONNREFUSED`).
 */
export function createIamTransport(): IamTransport {
  const dispatcher = new Agent({ connections: CONNECTIONS_PER_ORIGIN });
  const adapter: AxiosAdapter = (config) => send(dispatcher, config);
  return { adapter, close: () => dispatcher.close() };
}

/**
 * One request through undici's handler interface (`dispatch`): no AbortController, stream or
 * async iterator per call. Measured through axios against the benchmark's IAM stub (50 in flight,
 * alternating rounds, on a slower day than the figures above): 74–79 µs of CPU per call against
 * 85–88 µs with undici's `request()`.
 */
function send(dispatcher: Agent, config: InternalAxiosRequestConfig): Promise<AxiosResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(config.url ?? '');
    const timeoutMs = config.timeout ?? 0;
    const callerSignal = config.signal as AbortSignal | undefined;
    let cause: 'timeout' | 'canceled' | 'too-large' | undefined;
    let abortRequest: ((err: Error) => void) | undefined;
    let settled = false;
    let statusCode = 0;
    let headers: Record<string, string | string[]> = {};
    const chunks: Buffer[] = [];
    let size = 0;

    const stop = (why: NonNullable<typeof cause>) => {
      cause ??= why;
      // Before undici connects there is nothing to abort yet: answer now (onConnect aborts later).
      if (abortRequest) abortRequest(new Error(why));
      else settle(failure(undefined));
    };
    const onCallerAbort = () => stop('canceled');
    const timer = timeoutMs > 0 ? setTimeout(() => stop('timeout'), timeoutMs) : undefined;
    const settle = (err: AxiosError | undefined, response?: AxiosResponse) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      callerSignal?.removeEventListener?.('abort', onCallerAbort);
      if (err) reject(err);
      else resolve(response!);
    };
    const failure = (err: unknown): AxiosError => {
      if (cause === 'timeout') return new AxiosError(`timeout of ${timeoutMs}ms exceeded`, AxiosError.ETIMEDOUT, config);
      if (cause === 'canceled') return new AxiosError('canceled', AxiosError.ERR_CANCELED, config);
      if (cause === 'too-large') return new AxiosError(`response larger than ${MAX_IAM_RESPONSE_BYTES} bytes`, AxiosError.ERR_BAD_RESPONSE, config);
      return new AxiosError('network error', socketCode(err), config);
    };

    if (callerSignal?.aborted) {
      settle(new AxiosError('canceled', AxiosError.ERR_CANCELED, config));
      return;
    }
    callerSignal?.addEventListener?.('abort', onCallerAbort, { once: true });
    let body: string | Buffer | undefined;
    try {
      body = requestBody(config.data);
    } catch (err) {
      settle(new AxiosError((err as Error).message, AxiosError.ERR_BAD_REQUEST, config));
      return;
    }
    dispatcher.dispatch({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: (config.method ?? 'get').toUpperCase() as 'POST',
      headers: plainHeaders(config),
      body,
    }, {
      onConnect(abort) {
        abortRequest = abort;
        if (cause) abort(new Error(cause));
      },
      onHeaders(status, rawHeaders) {
        statusCode = status;
        headers = parseRawHeaders(rawHeaders);
        return true;
      },
      onData(chunk) {
        size += chunk.length;
        if (size > MAX_IAM_RESPONSE_BYTES) {
          stop('too-large');
          return false;
        }
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        if (cause) return settle(failure(undefined));
        const text = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
        const response: AxiosResponse = {
          data: text,
          status: statusCode,
          statusText: '',
          headers: headers as AxiosResponse['headers'],
          config,
          request: undefined,
        };
        if (config.validateStatus && !config.validateStatus(statusCode)) {
          settle(new AxiosError(`Request failed with status code ${statusCode}`, statusCode >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST, config, undefined, response));
          return;
        }
        settle(undefined, response);
      },
      onError(err) {
        settle(failure(err));
      },
    });
  });
}

/**
 * undici's raw header list (name, value, name, value, …) as lower-cased names and UTF-8 values, as
 * undici's own parser reads them; repeats become arrays.
 */
function parseRawHeaders(raw: Buffer[] | string[] | null): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = Object.create(null);
  if (!raw) return headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toString('latin1').toLowerCase();
    const value = raw[i + 1].toString('utf8');
    const seen = headers[name];
    headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return headers;
}

function plainHeaders(config: InternalAxiosRequestConfig): Record<string, string> {
  const headers: Record<string, string> = {};
  const raw = (config.headers?.toJSON?.() ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(raw)) {
    if (value !== undefined && value !== null && value !== false) headers[name.toLowerCase()] = String(value);
  }
  return headers;
}

function requestBody(data: unknown): string | Buffer | undefined {
  if (data === undefined || data === null) return undefined;
  if (typeof data === 'string' || Buffer.isBuffer(data)) return data;
  throw new TypeError('the IAM transport sends string or Buffer bodies only');
}

/** The socket error's own code (`ECONNREFUSED`, `ECONNRESET`, …), looked up through undici's wrapping. */
function socketCode(err: unknown): string {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth += 1) {
    if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR')) return e.code;
  }
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : AxiosError.ERR_NETWORK;
}
