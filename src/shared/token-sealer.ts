import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { KeyRing } from './crypto.js';
import { encodeTokenSet, type TokenSetPlaintext } from './token-set-codec.js';

/**
 * Turning a token set into the envelope stored in Redis: {@link encodeTokenSet}'s layout (DEFLATE
 * included), then AES-256-GCM with the primary key. That is most of a token write's CPU, so a
 * running worker does it on a worker thread ({@link ThreadSealer}), off the event loop that runs
 * jobs; {@link InlineSealer} does it in place.
 */
export interface TokenSealer {
  /** The envelope of `plaintext`, sealed with `aad` (the user's `tokenSetAad`). */
  seal(plaintext: TokenSetPlaintext, aad: string): Promise<Buffer>;
  /** Gets ready before the first seal (a worker role calls it at start, so no job waits for a thread to boot). */
  start(): Promise<void>;
  /** Finishes the seals under way and releases the thread, if any. */
  close(): Promise<void>;
}

/** Encodes and seals one token set on the calling thread: the one definition both sealers use. */
export function sealTokenSet(keyRing: KeyRing, plaintext: TokenSetPlaintext, aad: string): Buffer {
  return keyRing.seal(encodeTokenSet(plaintext), aad);
}

/** Seals in place, on the caller's thread. */
export class InlineSealer implements TokenSealer {
  constructor(private readonly keyRing: KeyRing) {}

  async seal(plaintext: TokenSetPlaintext, aad: string): Promise<Buffer> {
    return sealTokenSet(this.keyRing, plaintext, aad);
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}

/** What the thread receives: per item the access token, the refresh token or null, and the AAD. */
export interface SealBatchMessage {
  batch: number;
  items: (string | null)[];
}

/** What the thread says once it has loaded and can seal. */
export const SEAL_THREAD_READY = 'ready';

/** What the thread answers: every envelope, back to back in one transferred buffer. */
export interface SealBatchReply {
  batch: number;
  envelopes?: ArrayBuffer;
  /** End offset of each envelope in `envelopes`. */
  ends?: number[];
  /** Set instead when the batch failed (a message from our code; it never holds a token). */
  error?: string;
}

/** What the thread is started with: the key that seals (the thread never needs the others). */
export interface SealThreadData {
  keyId: string;
  /** A copy of the 32 key bytes (not a view of Node's shared buffer pool, which would be copied whole). */
  key: Uint8Array;
}

interface PendingSeal {
  plaintext: TokenSetPlaintext;
  aad: string;
  resolve(envelope: Buffer): void;
  reject(err: unknown): void;
}

/** Options of {@link ThreadSealer}. */
export interface ThreadSealerOptions {
  /** Told when the thread fails (what it held is then sealed in place, so no write is lost). */
  logger?: Logger;
  /** The thread's entry module. @defaultValue token-sealer-thread beside this module */
  threadUrl?: URL;
  /** A thread that has not loaded, or not answered a batch, within this long counts as failed. @defaultValue 10000 */
  timeoutMs?: number;
}

/** After this many thread failures (over the sealer's lifetime) it stops starting threads and seals in place. */
const MAX_THREAD_FAILURES = 3;

/**
 * Seals on one worker thread, started by {@link ThreadSealer.start} or on first use. The seals
 * asked for in one event-loop iteration go to the thread as one message and come back as one
 * transferred buffer. One batch is on the thread at a time; seals that arrive meanwhile gather into
 * the next (under load batches grow instead of messages multiplying: each message wakes the
 * thread). The event loop then spends ~15 µs per token set on it (mostly `postMessage`, profiled)
 * instead of the ~40–70 µs of encoding, DEFLATE and AES-GCM (BENCHMARKS.md, "Exchange throughput").
 *
 * If the thread fails (it throws, exits, refuses a batch, or does not load or answer within
 * `timeoutMs`), what it held is sealed in place: a seal is a pure function, so nothing
 * is lost and Redis has seen none of it. After three failures the sealer seals in place for good
 * and logs that at error level.
 */
export class ThreadSealer implements TokenSealer {
  private worker?: Worker;
  private queued: PendingSeal[] = [];
  private inFlight?: { batch: number; items: PendingSeal[] };
  private nextBatch = 1;
  private flushScheduled = false;
  private failures = 0;
  private ready = false;
  private closed = false;
  private watchdog?: NodeJS.Timeout;
  private idleWaiters: (() => void)[] = [];
  private readyWaiters: (() => void)[] = [];
  /** Batches and token sets sent to the thread so far (for tests and diagnostics). */
  readonly sent = { batches: 0, items: 0 };
  /** Seals when the thread cannot: after close(), after it failed, for what a failed thread held. */
  private readonly inPlace: InlineSealer;

  constructor(
    private readonly keyRing: KeyRing,
    private readonly options: ThreadSealerOptions = {},
  ) {
    this.inPlace = new InlineSealer(keyRing);
  }

  seal(plaintext: TokenSetPlaintext, aad: string): Promise<Buffer> {
    if (this.closed || this.failures >= MAX_THREAD_FAILURES) return this.inPlace.seal(plaintext, aad);
    return new Promise((resolve, reject) => {
      this.queued.push({ plaintext, aad, resolve, reject });
      if (!this.flushScheduled && !this.inFlight) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Starts the thread now; resolves once it has loaded, or has failed (then seals go in place), or the sealer closed. */
  async start(): Promise<void> {
    if (this.closed || this.ready || !this.thread()) return;
    await new Promise<void>((resolve) => this.readyWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    if (this.inFlight || this.queued.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const worker = this.worker;
    this.worker = undefined;
    clearTimeout(this.watchdog);
    this.markReady(false);
    await worker?.terminate();
  }

  /** Sends what gathered, unless a batch is on the thread (its answer sends the next). */
  private flush(): void {
    if (this.inFlight || this.queued.length === 0) return this.settleIdle();
    const items = this.queued;
    this.queued = [];
    let worker: Worker | undefined;
    try {
      worker = this.closed && !this.worker ? undefined : this.thread();
      if (worker) {
        const batch = this.nextBatch++;
        const message: SealBatchMessage = { batch, items: [] };
        for (const item of items) message.items.push(item.plaintext.accessToken, item.plaintext.refreshToken ?? null, item.aad);
        this.inFlight = { batch, items };
        worker.ref();
        this.armWatchdog(worker, 'did not answer a batch');
        worker.postMessage(message);
        this.sent.batches += 1;
        this.sent.items += items.length;
        return;
      }
    } catch (err) {
      this.inFlight = undefined;
      this.fail(worker, `could not take a batch: ${String((err as Error)?.message ?? err)}`);
    }
    this.sealInPlace(items);
    this.settleIdle();
  }

  /** The running thread, started when there is none (undefined once it has failed too often). */
  private thread(): Worker | undefined {
    if (this.worker) return this.worker;
    if (this.failures >= MAX_THREAD_FAILURES) return undefined;
    const { id, key } = this.keyRing.primary;
    const data: SealThreadData = { keyId: id, key: new Uint8Array(key) };
    const worker = startThread(this.options.threadUrl ?? defaultThreadUrl(), data);
    this.worker = worker;
    worker.on('message', (reply: SealBatchReply | typeof SEAL_THREAD_READY) => {
      if (reply === SEAL_THREAD_READY) {
        clearTimeout(this.watchdog);
        this.markReady(true);
        if (this.inFlight) this.armWatchdog(worker, 'did not answer a batch');
        else this.settleIdle();
      } else {
        this.answer(worker, reply);
      }
    });
    worker.on('messageerror', (err) => this.fail(worker, `sent an unreadable message (${err.message})`));
    worker.on('error', (err) => this.fail(worker, err.message));
    worker.on('exit', (code) => this.fail(worker, `exited with code ${code}`));
    // Referenced until it has loaded (someone may be waiting in start()); unreferenced when idle.
    this.armWatchdog(worker, 'did not load');
    return worker;
  }

  private answer(worker: Worker, reply: SealBatchReply): void {
    const held = this.inFlight;
    if (!held || reply.batch !== held.batch) return;
    if (!reply.envelopes || reply.ends?.length !== held.items.length) {
      this.fail(worker, `refused a batch (${reply.error ?? 'malformed answer'})`);
      return;
    }
    clearTimeout(this.watchdog);
    this.inFlight = undefined;
    let start = 0;
    held.items.forEach((item, i) => {
      const end = reply.ends![i];
      item.resolve(Buffer.from(reply.envelopes!, start, end - start));
      start = end;
    });
    this.flush();
  }

  /**
   * The thread failed (or could not be started: `worker` undefined): what it held is sealed in
   * place, the thread is dropped, and the next batch starts a new one while failures allow.
   */
  private fail(worker: Worker | undefined, reason: string): void {
    if (worker && this.worker !== worker) return; // a thread already dropped (or closed) says goodbye
    this.worker = undefined;
    clearTimeout(this.watchdog);
    this.markReady(false);
    void worker?.terminate();
    const held = this.inFlight?.items ?? [];
    this.inFlight = undefined;
    this.failures += 1;
    const gaveUp = this.failures >= MAX_THREAD_FAILURES;
    this.options.logger?.[gaveUp ? 'error' : 'warn'](
      { reason, failures: this.failures },
      gaveUp ? 'token sealer thread keeps failing; sealing on the main thread from now on' : 'token sealer thread failed; its batch is sealed in place',
    );
    this.sealInPlace(held);
    this.flush();
  }

  private armWatchdog(worker: Worker, what: string): void {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.fail(worker, `${what} within ${timeoutMs} ms`), timeoutMs);
    this.watchdog.unref();
  }

  private markReady(ready: boolean): void {
    this.ready = ready;
    for (const wake of this.readyWaiters.splice(0)) wake();
  }

  /** Nothing on the thread: let the process exit; and when nothing is queued either, wake {@link close}. */
  private settleIdle(): void {
    if (this.inFlight) return;
    this.worker?.unref();
    if (this.queued.length === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private sealInPlace(items: PendingSeal[]): void {
    for (const item of items) this.inPlace.seal(item.plaintext, item.aad).then(item.resolve, item.reject);
  }
}

/** The thread's entry: compiled JavaScript beside this module, or the TypeScript source under tsx/vitest. */
function defaultThreadUrl(): URL {
  const source = import.meta.url.endsWith('.ts');
  return new URL(`./token-sealer-thread.${source ? 'ts' : 'js'}`, import.meta.url);
}

function startThread(url: URL, workerData: SealThreadData): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  // Running from TypeScript sources (tests, `tsx`): the thread registers tsx's loader itself, since
  // Node 20 does not pass module hooks on to worker threads. Resolved here, not from the thread's
  // working directory.
  const api = typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx/esm/api') : 'tsx/esm/api';
  const boot = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
