import { AxiosError, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { Agent } from 'undici';

/** Largest IAM answer read; a token response is a few KiB. */
export const MAX_IAM_RESPONSE_BYTES = 1024 * 1024;

/** Connections kept per IAM origin. */
const CONNECTIONS_PER_ORIGIN = 256;

/** An axios adapter over an undici connection pool, and the pool's close. */
export interface IamTransport {
  adapter: AxiosAdapter;
  /** Closes the pooled connections; in-flight requests finish first. */
  close(): Promise<void>;
}

/**
 * The axios transport of the IAM client: requests go through an undici keep-alive pool instead
 * of axios's Node `http` adapter. Measured on the benchmark machine (token-endpoint POST, 50 in
 * flight): ~63 µs of CPU per call against ~136 µs with the `http` adapter, which is most of what a
 * worker spends per exchange (BENCHMARKS.md, "Exchange throughput").
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

async function send(dispatcher: Agent, config: InternalAxiosRequestConfig): Promise<AxiosResponse> {
  const url = new URL(config.url ?? '');
  const timeoutMs = config.timeout ?? 0;
  const controller = new AbortController();
  let timedOut = false;
  const timer = timeoutMs > 0 ? setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs) : undefined;
  const callerSignal = config.signal as AbortSignal | undefined;
  const onCallerAbort = () => controller.abort();
  if (callerSignal?.aborted) controller.abort();
  callerSignal?.addEventListener?.('abort', onCallerAbort, { once: true });
  try {
    const res = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: (config.method ?? 'get').toUpperCase() as 'POST',
      headers: plainHeaders(config),
      body: requestBody(config.data),
      signal: controller.signal,
    });
    const text = await readBody(res.body, config);
    const response: AxiosResponse = {
      data: text,
      status: res.statusCode,
      statusText: '',
      headers: res.headers as AxiosResponse['headers'],
      config,
      request: undefined,
    };
    if (config.validateStatus && !config.validateStatus(res.statusCode)) {
      throw new AxiosError(`Request failed with status code ${res.statusCode}`, res.statusCode >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST, config, undefined, response);
    }
    return response;
  } catch (err) {
    if (err instanceof AxiosError) throw err;
    if (timedOut) throw new AxiosError(`timeout of ${timeoutMs}ms exceeded`, AxiosError.ETIMEDOUT, config);
    if (callerSignal?.aborted) throw new AxiosError('canceled', AxiosError.ERR_CANCELED, config);
    throw new AxiosError('network error', socketCode(err), config);
  } finally {
    if (timer) clearTimeout(timer);
    callerSignal?.removeEventListener?.('abort', onCallerAbort);
  }
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

async function readBody(body: AsyncIterable<Buffer> & { destroy(): void }, config: InternalAxiosRequestConfig): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_IAM_RESPONSE_BYTES) {
      body.destroy();
      throw new AxiosError(`response larger than ${MAX_IAM_RESPONSE_BYTES} bytes`, AxiosError.ERR_BAD_RESPONSE, config);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
}

/** The socket error's own code (`ECONNREFUSED`, `ECONNRESET`, …), looked up through undici's wrapping. */
function socketCode(err: unknown): string {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth += 1) {
    if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR')) return e.code;
  }
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : AxiosError.ERR_NETWORK;
}
