import { Axios } from 'axios';
import { TokexError } from './errors.js';
import { classifyIamResponse, type IamCall, type TokenResponse } from './iam-outcome.js';
import { createIamTransport, type IamTransport } from './iam-transport.js';

/** RFC 8693 grant type. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 token type of an access token. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** RFC 8693 token type of a refresh token (asked for so both Keycloak generations return one). */
export const REFRESH_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:refresh_token';

/** Options of {@link IamClient}. */
export interface IamClientOptions {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** How the client authenticates. @defaultValue 'client_secret_post' */
  clientAuth?: 'client_secret_post' | 'client_secret_basic';
  /** Space-separated scopes sent with exchanges; empty sends none. @defaultValue '' */
  scope?: string;
  /** `audience` sent with exchanges, when set. */
  audience?: string;
  /** Per-request timeout. @defaultValue 10000 */
  timeoutMs?: number;
  /** RFC 7009 revocation endpoint; revocation is skipped when unset. */
  revocationUrl?: string;
  /** Observes every call (metrics): which call, HTTP status (0 on network error), duration. */
  onCall?: (event: { call: IamCall | 'revoke'; status: number; durationMs: number }) => void;
}

/**
 * The broker's HTTP client for the IAM: token exchange, refresh and revocation as a confidential
 * client, with axios over a keep-alive undici pool ({@link createIamTransport}). Axios never throws
 * on an HTTP status here (every answer goes through {@link classifyIamResponse}), and network errors
 * are rewrapped so the request body that axios keeps in `error.config` can never reach a log or a
 * failure reason.
 */
export class IamClient {
  private readonly http: Axios;
  private readonly transport: IamTransport;

  constructor(private readonly options: IamClientOptions) {
    this.transport = createIamTransport();
    // A bare Axios with only what is used, not axios.create(): axios merges the instance defaults
    // into every request, and the full default set costs ~9 µs of CPU per call. Bodies stay text:
    // classifyIamResponse parses them (an error page is not JSON).
    this.http = new Axios({
      adapter: this.transport.adapter,
      timeout: options.timeoutMs ?? 10_000,
      validateStatus: () => true,
      headers: { Accept: 'application/json', 'User-Agent': 'token-exchange-worker' },
      transformRequest: [],
      transformResponse: [],
    });
  }

  /** Closes the pooled connections to the IAM. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** Exchanges a user's subject token (RFC 8693) for the client's own access and refresh tokens. */
  exchange(subjectToken: string, signal?: AbortSignal): Promise<TokenResponse> {
    const form: Record<string, string> = {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      requested_token_type: REFRESH_TOKEN_TYPE,
    };
    if (this.options.scope) form.scope = this.options.scope;
    if (this.options.audience) form.audience = this.options.audience;
    return this.tokenCall('exchange', form, signal);
  }

  /** Uses a refresh token (`grant_type=refresh_token`); with rotation on, the old one is then dead. */
  refresh(refreshToken: string, signal?: AbortSignal): Promise<TokenResponse> {
    return this.tokenCall('refresh', { grant_type: 'refresh_token', refresh_token: refreshToken }, signal);
  }

  /** True when a revocation endpoint is configured. */
  get canRevoke(): boolean {
    return Boolean(this.options.revocationUrl);
  }

  /** Revokes a refresh token (RFC 7009). A no-op without a revocation URL. */
  async revoke(refreshToken: string, signal?: AbortSignal): Promise<void> {
    if (!this.options.revocationUrl) return;
    const { status } = await this.post('revoke', this.options.revocationUrl, {
      token: refreshToken,
      token_type_hint: 'refresh_token',
    }, signal);
    if (status >= 200 && status < 300) return;
    if (status === 429 || status >= 500) throw new TokexError('iam_unavailable', `IAM revocation answered ${status}`, { status });
    throw new TokexError('client_misconfigured', `IAM revocation answered ${status}; check IAM_REVOCATION_URL and the client`, { status });
  }

  private async tokenCall(call: IamCall, form: Record<string, string>, signal?: AbortSignal): Promise<TokenResponse> {
    const { status, headers, data } = await this.post(call, this.options.tokenUrl, form, signal);
    return classifyIamResponse(call, status, headers, data);
  }

  private async post(
    call: IamCall | 'revoke',
    url: string,
    form: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ status: number; headers: Record<string, unknown>; data: unknown }> {
    const { clientId, clientSecret, clientAuth } = this.options;
    const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const body = new URLSearchParams(form);
    if (clientAuth === 'client_secret_basic') {
      // RFC 6749 2.3.1: form-urlencode id and secret before base64.
      const pair = `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`;
      headers.Authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
    } else {
      body.set('client_id', clientId);
      body.set('client_secret', clientSecret);
    }
    const started = performance.now();
    try {
      const res = await this.http.request({ method: 'post', url, data: body.toString(), headers, signal });
      this.options.onCall?.({ call, status: res.status, durationMs: performance.now() - started });
      return { status: res.status, headers: res.headers as Record<string, unknown>, data: res.data };
    } catch (err) {
      this.options.onCall?.({ call, status: 0, durationMs: performance.now() - started });
      throw networkError(err, signal);
    }
  }
}

/** A fresh error naming only the network failure: the axios error (and its config) is dropped. */
function networkError(err: unknown, signal?: AbortSignal): TokexError {
  if (signal?.aborted) return new TokexError('aborted', 'IAM request cancelled');
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'unknown';
  const detail = code === 'ECONNABORTED' || code === 'ETIMEDOUT' ? 'timed out' : `failed (${code})`;
  return new TokexError('iam_unavailable', `IAM request ${detail}`);
}
