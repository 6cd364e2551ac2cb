import { randomUUID } from 'node:crypto';
import { JSON_DICTIONARY } from '../src/shared/token-set-codec.js';
const sub = randomUUID(); const now = 1790000000;
const claims = { exp: now + 300, iat: now, jti: randomUUID(), iss: 'http://localhost:8081/realms/tokex', aud: ['tokex-worker', 'account'],
      sub, typ: 'Bearer', azp: 'tokex-worker', sid: randomUUID(), acr: '1', 'allowed-origins': ['/*'],
      realm_access: { roles: ['offline_access', 'default-roles-tokex', 'uma_authorization'] },
      resource_access: { account: { roles: ['manage-account', 'manage-account-links', 'view-profile'] } },
      scope: 'openid profile email offline_access', email_verified: true, name: 'Demo User',
      preferred_username: `user-${sub.slice(0, 8)}`, given_name: 'Demo', family_name: 'User', email: `${sub.slice(0, 8)}@example.test` };
const text = Buffer.from(JSON.stringify(claims)).toString('latin1');
const esc = (e: string) => e.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const flat = new RegExp([...JSON_DICTIONARY].sort((a, b) => b.length - a.length).map(esc).join('|'), 'g');
// trie regex
type Node = Map<string, Node> & { end?: boolean };
const root: Node = new Map();
for (const e of JSON_DICTIONARY) { let n = root; for (const ch of e) { if (!n.has(ch)) n.set(ch, new Map()); n = n.get(ch)!; } n.end = true; }
function toRe(n: Node): string {
  const alts = [...n].map(([ch, c]) => esc(ch) + toRe(c));
  if (alts.length === 0) return '';
  const body = alts.length === 1 ? alts[0] : `(?:${alts.join('|')})`;
  return n.end ? `(?:${body})?` : body;
}
const trie = new RegExp(toRe(root), 'g');
const MAP = new Map(JSON_DICTIONARY.map((e, c) => [e, String.fromCharCode(c)]));
const a = text.replace(flat, (m) => MAP.get(m)!), b = text.replace(trie, (m) => MAP.get(m)!);
console.log(a === b, a.length, b.length);
function t(name: string, f: () => unknown) { for (let i = 0; i < 20000; i++) f(); const t0 = process.hrtime.bigint(); for (let i = 0; i < 200000; i++) f(); console.log(name.padEnd(16), (Number(process.hrtime.bigint() - t0) / 1000 / 200000).toFixed(3), 'µs'); }
t('flat', () => text.replace(flat, (m) => MAP.get(m)!));
t('trie', () => text.replace(trie, (m) => MAP.get(m)!));
