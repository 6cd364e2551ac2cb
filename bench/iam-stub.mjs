// A zero-latency token endpoint for benchmarks, run as its own process: answers every token-exchange
// POST with a Keycloak-shaped body whose access token carries the subject token's `sub`.
// Prints "listening <port>" on stdout when ready.
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
// JOSE headers as Keycloak writes them (Jackson's spacing around two of the colons).
const header = Buffer.from('{"alg":"RS256","typ" : "JWT","kid" : "bench"}').toString('base64url');
const refreshHeader = Buffer.from('{"alg":"HS512","typ" : "JWT","kid" : "bench-hs"}').toString('base64url');
const signature = randomBytes(256).toString('base64url');
const refreshSignature = randomBytes(64).toString('base64url');

function tokensFor(sub) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    exp: now + 300, iat: now, jti: randomBytes(8).toString('hex'), iss: 'http://127.0.0.1/realms/bench', aud: ['tokex-worker', 'account'],
    sub, typ: 'Bearer', azp: 'tokex-worker', sid: randomBytes(8).toString('hex'), scope: 'openid profile email offline_access',
    email_verified: true, preferred_username: `user-${sub.slice(0, 8)}`, realm_access: { roles: ['offline_access', 'default-roles-bench'] },
  };
  return {
    access_token: `${header}.${enc(claims)}.${signature}`,
    expires_in: 300,
    refresh_expires_in: 0,
    refresh_token: `${refreshHeader}.${enc({ exp: 0, iat: now, sub, typ: 'Offline', sid: claims.sid })}.${refreshSignature}`,
    token_type: 'Bearer',
    'not-before-policy': 0,
    session_state: claims.sid,
    scope: claims.scope,
  };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const subject = form.get('subject_token') ?? '';
    let sub = 'unknown';
    try {
      sub = JSON.parse(Buffer.from(subject.split('.')[1] ?? '', 'base64url').toString()).sub ?? 'unknown';
    } catch {
      // opaque token: keep "unknown"
    }
    const body = JSON.stringify(tokensFor(sub));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
