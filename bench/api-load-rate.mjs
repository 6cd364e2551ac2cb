// Fixed-rate load generator for bench/api.ts, run as a SEPARATE process: sends POSTs at an even
// pace (open loop, over an undici pool) and measures each request's latency from the moment it was
// DUE, not from when it was sent, so a stalled generator or server counts against the result
// (no coordinated omission). autocannon's `overallRate` sends in bursts, which measures its own
// queueing: against a bare Node `http` server answering at once it reports a p99 of 7-10 ms at
// 2,000 req/s on the 2-core benchmark machine.
// Reads its settings from argv[2] (JSON), prints one JSON line.
import { Pool } from 'undici';

const { url, apiKey, body, connections, durationSeconds, overallRate } = JSON.parse(process.argv[2]);
const target = new URL('/v1/exchanges', url);
const pool = new Pool(target.origin, { connections });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` };
const latenciesMs = [];
let accepted = 0;
let non2xx = 0;
let errors = 0;

async function send(dueAtMs) {
  try {
    const res = await pool.request({ method: 'POST', path: target.pathname, headers, body });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) accepted += 1;
    else non2xx += 1;
  } catch {
    errors += 1;
  }
  latenciesMs.push(performance.now() - dueAtMs);
}

const intervalMs = 1000 / overallRate;
const total = Math.round(overallRate * durationSeconds);
const startedMs = performance.now();
const inFlight = [];
let sent = 0;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    while (sent < total && startedMs + sent * intervalMs <= now) {
      inFlight.push(send(startedMs + sent * intervalMs));
      sent += 1;
    }
    if (sent < total) setTimeout(tick, 0); // ~1 ms: requests due meanwhile go out together
    else resolve();
  };
  tick();
});
await Promise.all(inFlight);
const elapsedSeconds = (performance.now() - startedMs) / 1000;
await pool.close();
latenciesMs.sort((a, b) => a - b);
const at = (q) => Number(latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))].toFixed(1));
process.stdout.write(`${JSON.stringify({
  requestsPerSecond: Number((total / elapsedSeconds).toFixed(1)),
  total,
  accepted,
  non2xx,
  errors,
  latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), mean: Number((latenciesMs.reduce((a, b) => a + b, 0) / latenciesMs.length).toFixed(2)) },
})}\n`);
