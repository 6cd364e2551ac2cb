import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyRing, tokenSetAad } from '../src/shared/crypto.js';
import { decodeTokenSet } from '../src/shared/token-set-codec.js';
import { InlineSealer, ThreadSealer } from '../src/shared/token-sealer.js';
import { epochSeconds, fakeJwt } from './helpers/jwt.js';
import { captureLogger } from './helpers/logs.js';

const keyRing = KeyRing.parse(KeyRing.generateSpec('sealer'));
const tokenSets = Array.from({ length: 100 }, (_, i) => ({
  accessToken: fakeJwt({ sub: `user-${i}`, exp: epochSeconds(300), preferred_username: `name-${i}` }),
  refreshToken: i % 3 === 0 ? undefined : fakeJwt({ sub: `user-${i}`, typ: 'Offline', exp: 0 }),
}));
const tokensOf = (i: number) => tokenSets[i];
const plain = (t: ReturnType<typeof tokensOf>) => (t.refreshToken === undefined ? { accessToken: t.accessToken } : t);
const opened = (envelope: Buffer, userId: string) => decodeTokenSet(keyRing.open(envelope, tokenSetAad(userId)));

const scratch = mkdtempSync(join(tmpdir(), 'tokex-sealer-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
/** A thread entry module that misbehaves, to stand for a thread that crashes or cannot load. */
function badThread(name: string, code: string): URL {
  const file = join(scratch, `${name}.mjs`);
  writeFileSync(file, code);
  return pathToFileURL(file);
}

describe('ThreadSealer', () => {
  it('seals on its thread, one message per event-loop iteration, into envelopes bound to each user', async () => {
    const sealer = new ThreadSealer(keyRing);
    try {
      await sealer.start();
      const inputs = Array.from({ length: 25 }, (_, i) => tokensOf(i));
      const envelopes = await Promise.all(inputs.map((t, i) => sealer.seal(t, tokenSetAad(`user-${i}`))));
      expect(sealer.sent).toEqual({ batches: 1, items: 25 });
      envelopes.forEach((envelope, i) => expect(opened(envelope, `user-${i}`)).toEqual(plain(inputs[i])));
      expect(() => opened(envelopes[1], 'user-2')).toThrow(/authentication/);

      const later = await sealer.seal(tokensOf(99), tokenSetAad('user-99'));
      expect(sealer.sent).toEqual({ batches: 2, items: 26 });
      expect(opened(later, 'user-99')).toEqual(plain(tokensOf(99)));
    } finally {
      await sealer.close();
    }
  });

  it('close() lets seals under way finish, and seals in place afterwards', async () => {
    const sealer = new ThreadSealer(keyRing);
    await sealer.start();
    const pending = sealer.seal(tokensOf(1), tokenSetAad('user-1'));
    await sealer.close();
    expect(opened(await pending, 'user-1')).toEqual(plain(tokensOf(1)));
    expect(opened(await sealer.seal(tokensOf(2), tokenSetAad('user-2')), 'user-2')).toEqual(plain(tokensOf(2)));
    expect(sealer.sent.items).toBe(1);
  });

  it('seals in place what a crashing thread held, and gives the thread up after three failures', async () => {
    const { logger, text } = captureLogger();
    const threadUrl = badThread('crash', "import { parentPort } from 'node:worker_threads'; parentPort.postMessage('ready'); parentPort.on('message', () => process.exit(3));");
    const sealer = new ThreadSealer(keyRing, { logger, threadUrl });
    try {
      for (let round = 0; round < 4; round += 1) {
        const inputs = [tokensOf(round), tokensOf(round + 10)];
        const envelopes = await Promise.all(inputs.map((t, i) => sealer.seal(t, tokenSetAad(`u-${round}-${i}`))));
        envelopes.forEach((envelope, i) => expect(opened(envelope, `u-${round}-${i}`)).toEqual(plain(inputs[i])));
      }
      expect(sealer.sent.batches).toBe(3);
      expect(text()).toContain('token sealer thread failed');
      expect(text()).toContain('keeps failing; sealing on the main thread');
      expect(text()).toContain('exited with code 3');
      expect(text()).not.toContain(tokensOf(0).accessToken.split('.')[1]);
    } finally {
      await sealer.close();
    }
  });

  it('seals in place a batch the thread refuses, and counts the refusal as a thread failure', async () => {
    const { logger, text } = captureLogger();
    const threadUrl = badThread('refuses', "import { parentPort } from 'node:worker_threads'; parentPort.postMessage('ready'); parentPort.on('message', ({ batch }) => parentPort.postMessage({ batch, error: 'cannot seal' }));");
    const sealer = new ThreadSealer(keyRing, { logger, threadUrl });
    try {
      for (let round = 0; round < 4; round += 1) {
        expect(opened(await sealer.seal(tokensOf(round), tokenSetAad(`user-${round}`)), `user-${round}`)).toEqual(plain(tokensOf(round)));
      }
      expect(sealer.sent.batches).toBe(3);
      expect(text()).toContain('cannot seal');
      expect(text()).toContain('keeps failing');
    } finally {
      await sealer.close();
    }
  });

  it('replaces a thread that does not answer, and seals what it held in place', async () => {
    const { logger, text } = captureLogger();
    const threadUrl = badThread('silent', "import { parentPort } from 'node:worker_threads'; parentPort.postMessage('ready'); parentPort.on('message', () => {});");
    const sealer = new ThreadSealer(keyRing, { logger, threadUrl, timeoutMs: 300 });
    try {
      await sealer.start();
      expect(opened(await sealer.seal(tokensOf(7), tokenSetAad('user-7')), 'user-7')).toEqual(plain(tokensOf(7)));
      expect(sealer.sent.batches).toBe(1);
      expect(text()).toContain('did not answer a batch within 300 ms');
    } finally {
      await sealer.close();
    }
  });

  it('close() during start() lets start() return', async () => {
    const sealer = new ThreadSealer(keyRing);
    const starting = sealer.start();
    await sealer.close();
    await expect(starting).resolves.toBeUndefined();
  });

  it('lets the process exit with a started, idle thread it was never asked to close', async () => {
    const script = join(scratch, 'idle.mts');
    writeFileSync(script, `import { ThreadSealer } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'src/shared/token-sealer.ts')).href)};
import { KeyRing, tokenSetAad } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'src/shared/crypto.ts')).href)};
const sealer = new ThreadSealer(KeyRing.parse(KeyRing.generateSpec('idle')));
await sealer.start();
await sealer.seal({ accessToken: 'a.b.c' }, tokenSetAad('u'));
console.log('sealed', sealer.sent.batches);
`);
    const result = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: process.cwd(), encoding: 'utf8', timeout: 20_000 });
    expect(result.stdout, result.stderr).toContain('sealed 1');
    expect(result.status).toBe(0);
  });

  // `.ci/run` builds before testing; a bare `npx vitest` without a build skips this one.
  it.skipIf(!existsSync('dist/shared/token-sealer-thread.js'))('seals on its thread from the compiled package (dist/, no TypeScript loader)', () => {
    const script = join(scratch, 'dist-check.mjs');
    writeFileSync(script, `import { ThreadSealer, KeyRing, tokenSetAad } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'dist/index.js')).href)};
import { decodeTokenSet } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'dist/shared/token-set-codec.js')).href)};
const keyRing = KeyRing.parse(KeyRing.generateSpec('dist'));
const sealer = new ThreadSealer(keyRing);
await sealer.start();
const envelope = await sealer.seal({ accessToken: 'a.b.c', refreshToken: 'opaque' }, tokenSetAad('u'));
await sealer.close();
console.log(JSON.stringify({ sent: sealer.sent, tokens: decodeTokenSet(keyRing.open(envelope, tokenSetAad('u'))) }));
`);
    const result = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ sent: { batches: 1, items: 1 }, tokens: { accessToken: 'a.b.c', refreshToken: 'opaque' } });
  });

  it('start() returns when the thread cannot load, and seals still succeed', async () => {
    const { logger, text } = captureLogger();
    const sealer = new ThreadSealer(keyRing, { logger, threadUrl: badThread('throws', "throw new Error('no such codec');") });
    try {
      await sealer.start();
      expect(opened(await sealer.seal(tokensOf(5), tokenSetAad('user-5')), 'user-5')).toEqual(plain(tokensOf(5)));
      expect(text()).toContain('no such codec');
    } finally {
      await sealer.close();
    }
  });
});

describe('InlineSealer', () => {
  it('makes envelopes the thread sealer can be swapped with', async () => {
    const envelope = await new InlineSealer(keyRing).seal(tokensOf(4), tokenSetAad('user-4'));
    expect(opened(envelope, 'user-4')).toEqual(plain(tokensOf(4)));
  });
});
