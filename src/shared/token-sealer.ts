import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { EncryptionKey, KeyRing } from './crypto.js';
import { encodeTokenSet, type TokenSetPlaintext } from './token-set-codec.js';

/**
 * Turning a token set into the envelope stored in Redis: {@link encodeTokenSet}'s layout (DEFLATE
 * included), then AES-256-GCM with the primary key. That is most of a token write's CPU, so a
 * running worker does it on a worker thread ({@link ThreadSealer}), off the event loop that runs
 * jobs; {@link InlineSealer} does it in place.
 */
export interface TokenSealer {
  /** The envelope of `plaintext`, sealed with `aad` (the user's {@link tokenSetAad}). */
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
  key: EncryptionKey;
}

interface PendingSeal {
  plaintext: TokenSetPlaintext;
  aad: string;
  resolve(envelope: Buffer): void;
  reject(err: unknown): void;
}

/** Options of {@link ThreadSealer}. */
export interface ThreadSealerOptions {
  /** Told when the thread fails (the batch is then sealed in place, so no write is lost). */
  logger?: Logger;
  /** The thread's entry module. @defaultValue token-sealer-thread beside this module */
  threadUrl?: URL;
}

/** After this many thread failures the sealer stops starting threads and seals in place. */
const MAX_THREAD_FAILURES = 3;

/**
 * Seals on one worker thread, started by {@link start} or on first use. The seals asked for in one
 * event-loop iteration go to the thread as one message, and come back as one transferred buffer;
 * while a batch is on the thread the next one gathers (so under load batches grow instead of
 * messages multiplying: each wakes the thread). The event loop pays a few microseconds per token
 * set instead of the ~40–70 µs of encoding, DEFLATE and AES-GCM (BENCHMARKS.md, "Exchange
 * throughput").
 *
 * If the thread fails, the batches it held are sealed in place (a seal is a pure function: nothing
 * is lost, and Redis has seen none of it); after {@link MAX_THREAD_FAILURES} failures the sealer
 * seals in place for good and logs that at error level.
 */
export class ThreadSealer implements TokenSealer {
  private worker?: Worker;
  private queued: PendingSeal[] = [];
  private readonly inFlight = new Map<number, PendingSeal[]>();
  private nextBatch = 1;
  private flushScheduled = false;
  private failures = 0;
  private ready = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readyWaiters: (() => void)[] = [];
  /** Batches and items sent to the thread so far (for tests and metrics). */
  readonly sent = { batches: 0, items: 0 };

  constructor(
    private readonly keyRing: KeyRing,
    private readonly options: ThreadSealerOptions = {},
  ) {}

  seal(plaintext: TokenSetPlaintext, aad: string): Promise<Buffer> {
    if (this.closed || this.failures >= MAX_THREAD_FAILURES) return Promise.resolve(sealTokenSet(this.keyRing, plaintext, aad));
    return new Promise((resolve, reject) => {
      this.queued.push({ plaintext, aad, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Starts the thread now; resolves once it has loaded (or failed, and seals go in place). */
  async start(): Promise<void> {
    if (this.closed || this.ready) return;
    if (!this.thread()) return;
    await new Promise<void>((resolve) => this.readyWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    const worker = this.worker;
    if (!worker) return;
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.worker = undefined;
    await worker.terminate();
  }

  private flush(): void {
    this.flushScheduled = false;
    const items = this.queued;
    if (items.length === 0) return;
    // One batch at a time: what arrives meanwhile goes with the next, when this one is answered.
    if (this.inFlight.size > 0 && !this.closed) return;
    this.queued = [];
    const worker = this.closed && !this.worker ? undefined : this.thread();
    if (!worker) {
      this.sealInPlace(items);
      return;
    }
    const batch = this.nextBatch++;
    const message: SealBatchMessage = { batch, items: [] };
    for (const item of items) message.items.push(item.plaintext.accessToken, item.plaintext.refreshToken ?? null, item.aad);
    this.inFlight.set(batch, items);
    worker.ref();
    this.sent.batches += 1;
    this.sent.items += items.length;
    worker.postMessage(message);
  }

  /** The running thread, started when there is none. */
  private thread(): Worker | undefined {
    if (this.worker) return this.worker;
    if (this.failures >= MAX_THREAD_FAILURES) return undefined;
    const data: SealThreadData = { key: this.keyRing.primary };
    const worker = startThread(this.options.threadUrl ?? defaultThreadUrl(), data);
    worker.unref();
    worker.on('message', (reply: SealBatchReply | typeof SEAL_THREAD_READY) => {
      if (reply === SEAL_THREAD_READY) this.markReady(true);
      else this.answer(reply);
    });
    worker.on('error', (err) => this.fail(worker, err.message));
    worker.on('exit', (code) => this.fail(worker, `exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  private answer(reply: SealBatchReply): void {
    const items = this.inFlight.get(reply.batch);
    if (!items) return;
    this.inFlight.delete(reply.batch);
    if (this.inFlight.size === 0) this.idle();
    if (reply.envelopes && reply.ends) {
      let start = 0;
      items.forEach((item, i) => {
        const end = reply.ends![i];
        item.resolve(Buffer.from(reply.envelopes!, start, end - start));
        start = end;
      });
    } else {
      this.options.logger?.warn({ reason: reply.error }, 'token sealer thread failed a batch; sealed in place');
      this.sealInPlace(items);
    }
    this.flushGathered();
  }

  /** The thread died or could not start: seal what it held in place, and start afresh next time. */
  private fail(worker: Worker, reason: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.markReady(false);
    if (this.closed && this.inFlight.size === 0) return;
    this.failures += 1;
    const gaveUp = this.failures >= MAX_THREAD_FAILURES;
    this.options.logger?.[gaveUp ? 'error' : 'warn'](
      { reason, failures: this.failures },
      gaveUp ? 'token sealer thread keeps failing; sealing on the main thread from now on' : 'token sealer thread failed; its batches are sealed in place',
    );
    const held = [...this.inFlight.values()].flat();
    this.inFlight.clear();
    this.sealInPlace(held);
    this.idle();
    this.flushGathered();
  }

  /** Sends the batch that gathered while the previous one was on the thread. */
  private flushGathered(): void {
    if (this.queued.length > 0 && !this.flushScheduled) this.flush();
  }

  private markReady(ready: boolean): void {
    this.ready = ready;
    for (const wake of this.readyWaiters.splice(0)) wake();
  }

  /** Nothing is in flight: let the process exit, and wake {@link close}. */
  private idle(): void {
    this.worker?.unref();
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private sealInPlace(items: PendingSeal[]): void {
    for (const item of items) {
      try {
        item.resolve(sealTokenSet(this.keyRing, item.plaintext, item.aad));
      } catch (err) {
        item.reject(err);
      }
    }
  }
}

/** The thread's entry: compiled JavaScript beside this module, or the TypeScript source under tsx/vitest. */
function defaultThreadUrl(): URL {
  const source = import.meta.url.endsWith('.ts');
  return new URL(`./token-sealer-thread.${source ? 'ts' : 'js'}`, import.meta.url);
}

function startThread(url: URL, workerData: SealThreadData): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  // Running from TypeScript sources (tests, `tsx`): the thread registers tsx's loader itself,
  // since Node 20 does not pass module hooks on to worker threads.
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
