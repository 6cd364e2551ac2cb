import type { RunningRole } from '../broker.js';
import type { BrokerContext } from '../shared/context.js';
import { buildHttpApi, type HttpApi, type HttpApiOptions } from './http/server.js';

/** The running producer role: the HTTP API, with its base URL. */
export interface HttpRole extends RunningRole {
  url: string;
  api: HttpApi;
}

/** Starts the producer role: the HTTP API on HTTP_HOST:HTTP_PORT (docs/http-api.md). */
export async function startHttpRole(ctx: BrokerContext, options: HttpApiOptions = {}): Promise<HttpRole> {
  const api = await buildHttpApi(ctx, options);
  try {
    const url = await api.listen();
    return { name: 'producer', url, api, close: () => api.close() };
  } catch (err) {
    await api.close();
    throw err;
  }
}
