import { parentPort, workerData } from 'node:worker_threads';
import { KeyRing } from './crypto.js';
import { SEAL_THREAD_READY, sealTokenSet, type SealBatchMessage, type SealBatchReply, type SealThreadData } from './token-sealer.js';

/**
 * Entry of {@link ThreadSealer}'s worker thread: seals each batch of token sets and answers with
 * the envelopes back to back in one buffer, whose memory moves to the main thread (no copy).
 */
const { keyId, key } = workerData as SealThreadData;
const keyRing = new KeyRing([{ id: keyId, key: Buffer.from(key) }]);
const port = parentPort!;

port.on('message', ({ batch, items }: SealBatchMessage) => {
  let reply: SealBatchReply;
  try {
    const envelopes: Buffer[] = [];
    for (let i = 0; i < items.length; i += 3) {
      envelopes.push(sealTokenSet(keyRing, { accessToken: items[i]!, refreshToken: items[i + 1] ?? undefined }, items[i + 2]!));
    }
    // One fresh buffer (not Node's shared pool, which must not be transferred) holding them all.
    const all = new Uint8Array(envelopes.reduce((n, e) => n + e.length, 0));
    const ends: number[] = [];
    let at = 0;
    for (const e of envelopes) {
      all.set(e, at);
      at += e.length;
      ends.push(at);
    }
    reply = { batch, envelopes: all.buffer, ends };
    port.postMessage(reply, [all.buffer]);
  } catch (err) {
    reply = { batch, error: String((err as Error)?.message ?? err).slice(0, 200) };
    port.postMessage(reply);
  }
});

port.postMessage(SEAL_THREAD_READY);
