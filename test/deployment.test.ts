import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROLE_STARTERS } from '../src/broker.js';
import { KeyRing } from '../src/shared/crypto.js';
import { CONFIG_VARIABLES, loadConfig, type TokexConfig } from '../src/shared/config.js';

/**
 * Docker is not available where the tests run, so the deployment files are checked by reading them:
 * the compose file against the config module, the Dockerfile against the build layout, the realm
 * JSON against what docs/deployment.md promises.
 */

const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

type Env = Record<string, string>;
interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string | number | boolean>;
  env_file?: string | string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
}
interface Compose { services: Record<string, Service>; volumes?: Record<string, unknown> }

const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const v1Override = parse(read('deploy/docker-compose.v1.yml'), { merge: true }) as Compose;
const realm = JSON.parse(read('deploy/keycloak/realm-tokex.json'));
const dockerfile = read('Dockerfile');
const envExample = read('.env.example');
const deploymentDoc = read('docs/deployment.md');

const BROKER_ROLES = ['producer', 'worker', 'refresh', 'scheduler'];
const brokerServices = Object.entries(compose.services).filter(([, s]) => s.command?.slice(0, 3).join(' ') === 'node dist/cli.js start');

/** Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}` interpolation. */
function interpolate(value: string, vars: Env): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    const v = vars[name];
    const unsetOrEmpty = v === undefined || (op?.startsWith(':') && v === '');
    if (op === ':?' || op === '?') {
      if (unsetOrEmpty) throw new Error(`compose would stop: ${name}: ${arg}`);
      return v!;
    }
    if (op === ':-' || op === '-') return unsetOrEmpty ? arg ?? '' : v!;
    return v ?? '';
  });
}

function environmentOf(service: Service, vars: Env): Env {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), vars)]));
}

function rolesOf(service: Service): string[] {
  const index = service.command!.indexOf('--roles');
  return index < 0 ? BROKER_ROLES : service.command![index + 1].split(',');
}

/** What `.env` holds in the walkthrough. */
const dotEnv: Env = {
  TOKEN_ENCRYPTION_KEYS: KeyRing.generateSpec('k1'),
  IAM_CLIENT_SECRET: 'a-long-random-secret',
  PRODUCER_API_KEYS: 'key-one,key-two',
};

function withoutKeyRing(config: TokexConfig): Omit<TokexConfig, 'keyRing'> {
  const { keyRing: _ignored, ...rest } = config;
  return rest;
}

describe('docker-compose.yml', () => {
  it('runs Redis 7 with AOF, noeviction and a named volume for /data, with a healthcheck', () => {
    const redis = compose.services.redis;
    expect(redis.image).toMatch(/^redis:7/);
    const command = redis.command!.join(' ');
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--maxmemory-policy noeviction');
    const [volume, target] = redis.volumes![0].split(':');
    expect(target).toBe('/data');
    expect(compose.volumes).toHaveProperty(volume);
    expect(redis.healthcheck?.test?.join(' ')).toContain('redis-cli ping');
  });

  it('runs Keycloak 26 in dev mode importing the realm file, with health on the management port', () => {
    const kc = compose.services.keycloak;
    expect(kc.image).toMatch(/^quay\.io\/keycloak\/keycloak:26\.\d+/);
    expect(kc.command).toEqual(['start-dev', '--import-realm']);
    const mount = kc.volumes!.find((v) => v.includes('/opt/keycloak/data/import'))!;
    const hostDir = mount.split(':')[0];
    expect(existsSync(new URL(`${hostDir.replace(/^\.\//, '')}/realm-tokex.json`, root))).toBe(true);
    const env = environmentOf(kc, dotEnv);
    expect(env.KC_BOOTSTRAP_ADMIN_USERNAME).toBeTruthy();
    expect(env.KC_BOOTSTRAP_ADMIN_PASSWORD).toBeTruthy();
    expect(env.KC_HEALTH_ENABLED).toBe('true');
    const healthcheck = kc.healthcheck!.test!.join(' ');
    expect(healthcheck).toContain('9000');
    expect(healthcheck).toContain('/health/ready');
  });

  it('pins KC_HOSTNAME to the URL published on the host, so host and in-network tokens share one issuer', () => {
    const kc = compose.services.keycloak;
    const hostname = new URL(environmentOf(kc, dotEnv).KC_HOSTNAME);
    const published = kc.ports!.map((p) => p.split(':')).find(([, container]) => container === '8080')!;
    expect(hostname.port).toBe(published[0]);
  });

  it('runs every broker role from the image built by the Dockerfile, each role registered in ROLE_STARTERS', () => {
    expect(brokerServices.length).toBeGreaterThanOrEqual(1);
    const roles = brokerServices.flatMap(([, s]) => rolesOf(s));
    expect(new Set(roles)).toEqual(new Set(BROKER_ROLES));
    for (const role of roles) expect(Object.keys(ROLE_STARTERS)).toContain(role);
    for (const [, service] of brokerServices) {
      expect(service.build).toBe('.');
      expect([service.env_file].flat()).toContain('.env');
    }
  });

  it('passes the broker only variables the config module reads', () => {
    for (const [name, service] of brokerServices) {
      const unknown = Object.keys(service.environment ?? {}).filter((v) => !CONFIG_VARIABLES.includes(v));
      expect(unknown, `${name} passes unknown variables`).toEqual([]);
    }
  });

  it('gives each broker service a configuration the config module accepts, with what its roles need', () => {
    for (const [name, service] of brokerServices) {
      const env = environmentOf(service, dotEnv);
      const roles = rolesOf(service);
      const needsIam = roles.includes('worker') || roles.includes('refresh');
      const config = loadConfig({ env, need: needsIam ? ['iam'] : [] });
      expect(new URL(config.redisUrl).hostname, name).toBe('redis');
      if (needsIam) {
        expect(new URL(config.iam.tokenUrl!).hostname).toBe('keycloak');
        expect(config.iam.tokenUrl).toBe(`http://keycloak:8080/realms/${realm.realm}/protocol/openid-connect/token`);
        expect(config.iam.clientId).toBe('tokex-worker');
        // V2 refuses scope=offline_access: the base stack sends none.
        expect(config.iam.scope).toBe('');
      }
      if (roles.includes('producer')) {
        expect(config.http.apiKeys).toEqual(['key-one', 'key-two']);
        expect(config.http.host).toBe('0.0.0.0');
        expect(service.ports).toContain(`${config.http.port}:${config.http.port}`);
        expect(service.healthcheck?.test?.join(' ')).toContain(`127.0.0.1:${config.http.port}/healthz`);
      }
    }
  });

  it('refuses to start without the secrets of .env instead of starting a broken broker', () => {
    for (const missing of Object.keys(dotEnv)) {
      const vars = { ...dotEnv, [missing]: '' };
      const attempt = () => brokerServices.forEach(([, s]) => environmentOf(s, vars));
      expect(attempt, missing).toThrow(new RegExp(missing));
    }
  });

  it('starts the broker after Redis (and Keycloak for IAM roles) are healthy; the API has a healthcheck', () => {
    for (const [name, service] of brokerServices) {
      expect(service.depends_on?.redis?.condition, name).toBe('service_healthy');
      const roles = rolesOf(service);
      if (roles.includes('worker') || roles.includes('refresh')) expect(service.depends_on?.keycloak?.condition).toBe('service_healthy');
      if (roles.includes('producer')) expect(service.healthcheck?.test?.[0]).toBe('CMD');
      else expect(service.healthcheck?.disable, `${name} has no HTTP listener for the image's healthcheck`).toBe(true);
    }
  });

  it('has a V1 override that enables the legacy features and asks for an offline token', () => {
    for (const name of Object.keys(v1Override.services)) expect(compose.services).toHaveProperty(name);
    expect(v1Override.services.keycloak.command).toContain('--features=token-exchange:v1,admin-fine-grained-authz:v1');
    expect(v1Override.services.keycloak.environment?.TOKEX_STANDARD_TOKEN_EXCHANGE).toBe('false');
    expect(v1Override.services['tokex-worker'].environment?.IAM_SCOPE).toBe('offline_access');
  });
});

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const instructions = (stage: string, name: string) => stage.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1));

  it('builds in one node:20-bookworm-slim stage and runs in another with production dependencies only', () => {
    expect(stages).toHaveLength(2);
    for (const stage of stages) expect(stage).toMatch(/^node:20-bookworm-slim /);
    expect(instructions(stages[0], 'RUN').join('\n')).toMatch(/npm ci\b/);
    expect(instructions(stages[0], 'RUN').join('\n')).toContain('npm run build');
    expect(instructions(stages[1], 'RUN').join('\n')).toContain('npm ci --omit=dev');
    expect(stages[1]).toMatch(/NODE_ENV=production/);
    expect(instructions(stages[1], 'COPY').join('\n')).toContain('--from=build /app/dist ./dist');
  });

  it('runs `node dist/cli.js start` as a non-root user, exposing the default HTTP_PORT', () => {
    const runtime = stages[1];
    const user = instructions(runtime, 'USER');
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/^(root|0)$/);
    expect(JSON.parse(instructions(runtime, 'CMD')[0])).toEqual(['node', 'dist/cli.js', 'start']);
    const defaults = loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: dotEnv.TOKEN_ENCRYPTION_KEYS } });
    expect(instructions(runtime, 'EXPOSE')).toEqual([String(defaults.http.port)]);
    // dist/cli.js is what the build makes of src/cli.ts, and what the package's `tokex` bin points at.
    expect(existsSync(new URL('src/cli.ts', root))).toBe(true);
    expect(JSON.parse(read('tsconfig.build.json')).compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(JSON.parse(read('package.json')).bin.tokex).toBe('dist/cli.js');
  });

  it('checks /healthz of the HTTP role with node\'s fetch', () => {
    const healthcheck = dockerfile.slice(dockerfile.indexOf('HEALTHCHECK'));
    expect(healthcheck).toContain('/healthz');
    expect(healthcheck).toContain('fetch(');
    expect(healthcheck).toContain('process.env.HTTP_PORT');
  });

  it('copies only what .dockerignore lets into the context, and keeps .env out of it', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignored).toContain('.env');
    expect(ignored).toContain('node_modules');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    for (const source of sources) {
      expect(ignored, source).not.toContain(source);
      expect(existsSync(new URL(source, root)), source).toBe(true);
    }
  });
});

describe('.env.example', () => {
  const entries = [...envExample.matchAll(/^#?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => ({ name: m[1], value: m[2] }));

  it('lists exactly the variables of the config module, once each, each under a comment', () => {
    const names = entries.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...CONFIG_VARIABLES].sort());
    const lines = envExample.split('\n');
    for (const name of names) {
      const index = lines.findIndex((l) => new RegExp(`^#?${name}=`).test(l));
      expect(lines[index - 1], name).toMatch(/^# \S/);
    }
  });

  it('shows the real defaults: uncommenting every written value changes nothing', () => {
    const written: Env = { TOKEN_ENCRYPTION_KEYS: dotEnv.TOKEN_ENCRYPTION_KEYS };
    for (const { name, value } of entries) if (value !== '' && name !== 'TOKEN_ENCRYPTION_KEYS') written[name] = value;
    const fromExample = loadConfig({ env: written });
    const fromDefaults = loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: dotEnv.TOKEN_ENCRYPTION_KEYS } });
    expect(withoutKeyRing(fromExample)).toEqual(withoutKeyRing(fromDefaults));
  });

  it('loads as-is once the key is filled in (empty optional values are accepted)', () => {
    const env: Env = {};
    for (const { name, value } of entries) if (!envExample.includes(`#${name}=`)) env[name] = value;
    expect(Object.keys(env)).toContain('TOKEN_ENCRYPTION_KEYS');
    expect(() => loadConfig({ env })).toThrow(/TOKEN_ENCRYPTION_KEYS/);
    expect(() => loadConfig({ env: { ...env, TOKEN_ENCRYPTION_KEYS: dotEnv.TOKEN_ENCRYPTION_KEYS } })).not.toThrow();
  });
});

describe('deploy/keycloak/realm-tokex.json', () => {
  const keycloakEnv = environmentOf(compose.services.keycloak, dotEnv);
  const client = (id: string) => realm.clients.find((c: { clientId: string }) => c.clientId === id);
  /** The realm as Keycloak imports it: placeholders resolved from the container's environment. */
  const resolved = (env: Env) => JSON.parse(read('deploy/keycloak/realm-tokex.json').replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_m, name: string) => {
    if (env[name] === undefined) throw new Error(`realm placeholder ${name} has no value in the keycloak service`);
    return env[name];
  }));

  it('is an importable realm named tokex (master cannot be imported)', () => {
    expect(realm.realm).toBe('tokex');
    expect(realm.enabled).toBe(true);
  });

  it('has every placeholder provided by the keycloak service, the worker secret being IAM_CLIENT_SECRET', () => {
    const imported = resolved(keycloakEnv);
    const worker = imported.clients.find((c: { clientId: string }) => c.clientId === 'tokex-worker');
    expect(worker.secret).toBe(dotEnv.IAM_CLIENT_SECRET);
    expect(worker.attributes['standard.token.exchange.enabled']).toBe('true');
    const v1 = resolved({ ...keycloakEnv, ...v1Override.services.keycloak.environment as Env });
    expect(v1.clients.find((c: { clientId: string }) => c.clientId === 'tokex-worker').attributes['standard.token.exchange.enabled']).toBe('false');
  });

  it('has a public tokex-frontend client for password grants whose access tokens name tokex-worker as audience', () => {
    const frontend = client('tokex-frontend');
    expect(frontend.publicClient).toBe(true);
    expect(frontend.directAccessGrantsEnabled).toBe(true);
    const mapper = frontend.protocolMappers.find((m: { protocolMapper: string }) => m.protocolMapper === 'oidc-audience-mapper');
    expect(mapper.config['included.client.audience']).toBe('tokex-worker');
    expect(mapper.config['access.token.claim']).toBe('true');
  });

  it('has a confidential tokex-worker client set up for standard token exchange with refresh tokens', () => {
    const worker = client('tokex-worker');
    expect(worker.publicClient).toBe(false);
    expect(worker.clientAuthenticatorType).toBe('client-secret');
    expect(worker.secret).toBeTruthy();
    expect(worker.serviceAccountsEnabled).toBe(false);
    expect(worker.optionalClientScopes).toContain('offline_access');
    expect(worker.attributes['standard.token.exchange.enableRefreshRequestedTokenType']).toBe('SAME_SESSION');
    // `basic` carries the `sub` claim since Keycloak 25: without it tokens have no user id.
    expect(worker.defaultClientScopes).toContain('basic');
    expect(client('tokex-frontend').defaultClientScopes).toContain('basic');
  });

  it('has a demo user with a password and the offline_access role', () => {
    const demo = realm.users.find((u: { username: string }) => u.username === 'demo');
    expect(demo.enabled).toBe(true);
    expect(demo.credentials[0]).toMatchObject({ type: 'password', temporary: false });
    expect(demo.realmRoles).toContain('offline_access');
    expect(resolved(keycloakEnv).users[0].credentials[0].value).toBeTruthy();
  });

  it('has access tokens that outlive the refresh skew, so the scheduler is not refreshing constantly', () => {
    const defaults = loadConfig({ env: { TOKEN_ENCRYPTION_KEYS: dotEnv.TOKEN_ENCRYPTION_KEYS } });
    expect(realm.accessTokenLifespan).toBeGreaterThan(defaults.refresh.skewSeconds * 2);
    expect(realm.offlineSessionIdleTimeout).toBeGreaterThan(defaults.refresh.offlineKeepaliveSeconds);
  });
});

describe('docs/deployment.md', () => {
  it('walks through the stack with the names the files use', () => {
    const kcPort = compose.services.keycloak.ports![0].split(':')[0];
    expect(deploymentDoc).toContain('cp .env.example .env');
    expect(deploymentDoc).toContain('docker compose up -d');
    expect(deploymentDoc).toContain(`http://localhost:${kcPort}/realms/${realm.realm}/protocol/openid-connect/token`);
    expect(deploymentDoc).toContain('client_id=tokex-frontend');
    expect(deploymentDoc).toContain('grant_type=password');
    expect(deploymentDoc).toContain('POST');
    expect(deploymentDoc).toContain('/v1/exchanges');
    expect(deploymentDoc).toContain('/v1/users/');
    expect(deploymentDoc).toContain('tokex rekey');
    expect(deploymentDoc).toContain('{tokex}');
  });
});
