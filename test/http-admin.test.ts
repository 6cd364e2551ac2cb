import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startApiHarness, type ApiHarness } from './helpers/http-api.js';

const CHROMIUM = '/usr/bin/chromium';
const COOKIE_NAME = 'tokex_admin';

function cookieOf(res: Response): string {
  const header = res.headers.get('set-cookie') ?? '';
  return header.split(';')[0] ?? '';
}

describe('Bull Board at /admin/queues', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApiHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers 401 without a key, with a wrong key, and with a forged or expired cookie', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
      const res = await h.call(path, { auth: false });
      expect(res.status, path).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'unauthorized' });
    }
    expect((await h.call('/admin/queues?key=wrong', { auth: false })).status).toBe(401);
    const forged = `${COOKIE_NAME}=${Date.now() + 3600_000}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
    expect((await h.call('/admin/queues/api/queues', { auth: false, headers: { cookie: forged } })).status).toBe(401);
    const expired = cookieOf(await h.call(`/admin/queues?key=${API_KEY}`, { auth: false })).replace(/=(\d+)\./, '=1000.');
    expect((await h.call('/admin/queues/api/queues', { auth: false, headers: { cookie: expired } })).status).toBe(401);
  });

  it('serves the dashboard and its API with the bearer key, listing both queues', async () => {
    const page = await h.call('/admin/queues');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const api = await h.call('/admin/queues/api/queues');
    expect(api.status).toBe(200);
    const { queues } = (await api.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(queues.map((q) => q.name).sort()).toEqual(['exchange', 'refresh']);
    expect(queues.every((q) => q.readOnlyMode)).toBe(true);
  });

  it('?key= hands off to an HttpOnly SameSite=Strict cookie (not the key) and redirects without the key', async () => {
    const handoff = await h.call(`/admin/queues?key=${encodeURIComponent(API_KEY)}`, { auth: false });
    expect(handoff.status).toBe(303);
    expect(handoff.headers.get('location')).toBe('/admin/queues');
    const setCookie = handoff.headers.get('set-cookie') ?? '';
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/admin/queues');
    expect(setCookie).not.toContain(API_KEY);
    const cookie = cookieOf(handoff);
    const api = await h.call('/admin/queues/api/queues', { auth: false, headers: { cookie: `other=1; ${cookie}` } });
    expect(api.status).toBe(200);
    // The cookie opens only the dashboard, not the producer API.
    expect((await h.call('/v1/users/x', { auth: false, headers: { cookie } })).status).toBe(401);
  });

  it('is off with ADMIN_UI=false', async () => {
    const off = await startApiHarness({ env: { ADMIN_UI: 'false' } });
    try {
      expect((await off.call('/admin/queues')).status).toBe(404);
    } finally {
      await off.close();
    }
  });

  const hasChromium = existsSync(CHROMIUM);
  const browserTest = hasChromium ? it : it.skip;
  const browserTitle = 'shows both queues in headless Chromium after the ?key= handoff';
  browserTest(hasChromium ? browserTitle : `${browserTitle} — SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`, async () => {
    const userDataDir = mkdtempSync(join(tmpdir(), 'tokex-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
        '--no-first-run', '--disable-component-update', '--disable-sync',
      ],
    });
    try {
      const page = await context.newPage();
      await page.goto(`${h.url}/admin/queues?key=${encodeURIComponent(API_KEY)}`);
      expect(new URL(page.url()).search).toBe('');
      await page.getByText('exchange', { exact: true }).first().waitFor({ timeout: 15_000 });
      await page.getByText('refresh', { exact: true }).first().waitFor({ timeout: 15_000 });
      const text = await page.locator('body').innerText();
      expect(text).toContain('tokex queues');
      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/admin-queues.png', fullPage: true });
      expect(existsSync('test-artifacts/admin-queues.png')).toBe(true);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});
