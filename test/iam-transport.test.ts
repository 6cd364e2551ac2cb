import http from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IamClient } from '../src/shared/iam-client.js';
import { CONNECTIONS_PER_ORIGIN, createIamTransport, MAX_IAM_RESPONSE_BYTES } from '../src/shared/iam-transport.js';

/**
 * The IAM client's axios transport (undici pool) against a small local HTTP server that misbehaves
 * on purpose: the parts a real IAM rarely does (hang, reset, flood) but that must not hang a worker
 * or leak the request body. The real token calls are tested against the development IAM.
 */
const SECRET = 'client-secret-value';
const SUBJECT = 'subject-token-value';

interface Seen { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }

describe('IAM transport (axios over undici)', () => {
  let server: http.Server;
  let base: string;
  const seen: Seen[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c; });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        if (req.url?.startsWith('/hang')) return; // never answers
        if (req.url?.startsWith('/reset')) return req.socket.destroy();
        if (req.url?.startsWith('/huge')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(Buffer.alloc(MAX_IAM_RESPONSE_BYTES + 10, 0x20));
        }
        if (req.url?.startsWith('/redirect')) {
          res.writeHead(302, { location: '/ok' });
          return res.end();
        }
        if (req.url?.startsWith('/429')) {
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
          return res.end(JSON.stringify({ error: 'too_many_requests' }));
        }
        res.writeHead(req.url?.startsWith('/503') ? 503 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'a.b.c', token_type: 'Bearer', expires_in: '300' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const client = (path: string, extra: Partial<ConstructorParameters<typeof IamClient>[0]> = {}) =>
    new IamClient({ tokenUrl: `${base}${path}`, clientId: 'tokex', clientSecret: SECRET, timeoutMs: 300, ...extra });

  it('posts the form with the client credentials and reads status, headers and JSON', async () => {
    const iam = client('/ok?x=1', { clientAuth: 'client_secret_basic', scope: 'offline_access' });
    const tokens = await iam.exchange(SUBJECT);
    expect(tokens.accessToken).toBe('a.b.c');
    const req = seen.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/ok?x=1');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.accept).toBe('application/json');
    expect(req.headers['user-agent']).toBe('token-exchange-worker');
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from(`tokex:${SECRET}`).toString('base64')}`);
    expect(Object.fromEntries(new URLSearchParams(req.body))).toMatchObject({ subject_token: SUBJECT, scope: 'offline_access' });
    await iam.close();
  });

  it('hands non-2xx answers to the classifier with their headers (429 with Retry-After, 503)', async () => {
    expect(await client('/429').exchange(SUBJECT).catch((e: unknown) => e)).toMatchObject({ code: 'iam_rate_limited', status: 429, retryAfterMs: 7000 });
    expect(await client('/503').exchange(SUBJECT).catch((e: unknown) => e)).toMatchObject({ code: 'iam_unavailable', status: 503 });
  });

  it('does not follow a redirect', async () => {
    const before = seen.length;
    const err = await client('/redirect').exchange(SUBJECT).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'client_misconfigured', status: 302 });
    expect(seen.length).toBe(before + 1);
  });

  it.each([
    ['a hanging IAM times out', '/hang', /timed out/],
    ['a reset connection', '/reset', /failed \(/],
    ['a refused connection', null, /failed \(ECONNREFUSED\)/],
    ['an answer over the size cap', '/huge', /failed \(ERR_BAD_RESPONSE\)/],
  ])('%s fails with iam_unavailable and an error without the request body', async (_name, path, message) => {
    const iam = path ? client(path) : new IamClient({ tokenUrl: 'http://127.0.0.1:1/token', clientId: 'tokex', clientSecret: SECRET, timeoutMs: 300 });
    const err = await iam.refresh(SUBJECT).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'iam_unavailable' });
    expect((err as Error).message).toMatch(message);
    const dump = JSON.stringify(err, Object.getOwnPropertyNames(err)) + String((err as Error).stack);
    for (const secret of [SECRET, SUBJECT]) expect(dump).not.toContain(secret);
  });

  it('cancels with aborted when the caller aborts', async () => {
    const controller = new AbortController();
    const pending = client('/hang', { timeoutMs: 5000 }).exchange(SUBJECT, controller.signal).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 50);
    expect(await pending).toMatchObject({ code: 'aborted' });
  });

  it('times out and cancels a request still waiting for a connection (every pooled one busy)', async () => {
    const transport = createIamTransport();
    const http1 = axios.create({ adapter: transport.adapter });
    const busy = new AbortController();
    const holding = Array.from({ length: CONNECTIONS_PER_ORIGIN }, () =>
      http1.post(`${base}/hang`, 'x=1', { timeout: 60_000, signal: busy.signal }).catch((e: unknown) => e));
    try {
      const timedOut = await http1.post(`${base}/hang`, 'x=1', { timeout: 100 }).catch((e: unknown) => e);
      expect(timedOut).toMatchObject({ code: 'ETIMEDOUT' });
      const cancel = new AbortController();
      const cancelled = http1.post(`${base}/hang`, 'x=1', { timeout: 60_000, signal: cancel.signal }).catch((e: unknown) => e);
      setTimeout(() => cancel.abort(), 50);
      expect(await cancelled).toMatchObject({ code: 'ERR_CANCELED' });
      // Both settled while every connection was still held by a hanging request.
      expect(await Promise.race([holding[0], Promise.resolve('still pending')])).toBe('still pending');
    } finally {
      busy.abort();
      await Promise.all(holding);
      await transport.close();
    }
  });

  it('applies validateStatus like axios adapters do', async () => {
    const transport = createIamTransport();
    const http1 = axios.create({ adapter: transport.adapter });
    const err = await http1.post(`${base}/503`, 'x=1').catch((e: unknown) => e);
    expect(axios.isAxiosError(err) && err.response?.status).toBe(503);
    expect((await http1.post(`${base}/ok`, 'x=1')).data).toMatchObject({ token_type: 'Bearer' });
    await transport.close();
  });
});
