// Load generator for bench/api.ts, run as a SEPARATE process so it does not share the API's event
// loop. Reads its settings from argv[2] (JSON), prints autocannon's result as one JSON line.
import autocannon from 'autocannon';

const { url, apiKey, body, connections, pipelining, durationSeconds, overallRate } = JSON.parse(process.argv[2]);
const result = await autocannon({
  url: `${url}/v1/exchanges`,
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
  body,
  connections,
  pipelining,
  duration: durationSeconds,
  ...(overallRate ? { overallRate } : {}),
});
process.stdout.write(`${JSON.stringify({
  requestsPerSecond: result.requests.average,
  total: result.requests.total,
  accepted: result['2xx'],
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
})}\n`);
