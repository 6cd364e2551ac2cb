import {
  DEFAULT_FRONTEND_CLIENT_ID, DEFAULT_USERS, startDevIam, type DevIam, type ExchangeMode,
} from './index.js';

/** Value of `--name value` or `--name=value` in argv. */
function flag(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === `--${name}`) return argv[i + 1];
    if (arg?.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return undefined;
}

function parseMode(value: string | undefined): ExchangeMode {
  if (value === undefined || value === '') return 'v1';
  if (value === 'v1' || value === 'v2') return value;
  throw new Error(`DEV_IAM_MODE must be v1 or v2, got ${value}`);
}

function parsePort(value: string | undefined): number {
  const port = Number(value ?? '8081');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port ${value}`);
  return port;
}

/** Shell-quotes a value for the printed curl examples. */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function banner(iam: DevIam, mode: ExchangeMode, users: { username: string; password: string; sub: string }[],
  frontendClientId: string, controlBase: string | undefined): string {
  const { clientId, clientSecret } = iam.workerClient;
  const first = users[0];
  const lines = [
    `dev-iam (Keycloak imitation, token exchange ${mode.toUpperCase()}) listening`,
    `  issuer:            ${iam.issuer}`,
    `  token URL:         ${iam.tokenUrl}`,
    `  JWKS URL:          ${iam.jwksUrl}`,
    `  introspection URL: ${iam.introspectionUrl}`,
    `  revocation URL:    ${iam.revocationUrl}`,
    `  worker client:     ${clientId} / ${clientSecret}`,
    `  frontend client:   ${frontendClientId} (public, password grant)`,
    '  users:',
    ...users.map((u) => `    ${u.username} / ${u.password}  (sub ${u.sub})`),
    '',
  ];
  if (first) {
    lines.push(
      '# 1. log in as a user (password grant, frontend client):',
      `USER_TOKEN=$(curl -s ${q(iam.tokenUrl)} -d grant_type=password -d client_id=${q(frontendClientId)} \\`,
      `  -d username=${q(first.username)} -d password=${q(first.password)} | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
      '',
      '# 2. exchange it as the worker (RFC 8693):',
      `curl -s ${q(iam.tokenUrl)} -u ${q(`${clientId}:${clientSecret}`)} \\`,
      '  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\',
      '  -d subject_token="$USER_TOKEN" \\',
      '  -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\',
      '  -d requested_token_type=urn:ietf:params:oauth:token-type:refresh_token' +
        (mode === 'v1' ? ' \\\n  -d scope=offline_access' : ''),
      '',
    );
  }
  if (controlBase) {
    lines.push(
      '# fault injection / stats:',
      `curl -s -X POST ${controlBase}/dev/faults -H 'content-type: application/json' -d '{"failNext":2,"status":503}'`,
      `curl -s ${controlBase}/dev/stats`,
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `tokex dev-iam`: runs the development IAM until SIGINT/SIGTERM.
 *
 * Env: DEV_IAM_HOST (127.0.0.1), DEV_IAM_PORT (8081), DEV_IAM_MODE (v1|v2),
 * DEV_IAM_REALM (dev), DEV_IAM_PUBLIC_URL, DEV_IAM_CONTROL_API (true|false,
 * default true). Flags `--host`, `--port`, `--mode`, `--realm`,
 * `--no-control-api` override the env.
 */
export async function runDevIamCli(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const host = flag(argv, 'host') ?? env.DEV_IAM_HOST ?? '127.0.0.1';
  const port = parsePort(flag(argv, 'port') ?? env.DEV_IAM_PORT);
  const mode = parseMode(flag(argv, 'mode') ?? env.DEV_IAM_MODE);
  const realm = flag(argv, 'realm') ?? env.DEV_IAM_REALM ?? 'dev';
  const publicBaseUrl = flag(argv, 'public-url') ?? env.DEV_IAM_PUBLIC_URL;
  // The control API is for local demos; it is on unless switched off.
  const controlApi = !argv.includes('--no-control-api') && env.DEV_IAM_CONTROL_API !== 'false';

  const iam = await startDevIam({
    host, port, mode, realm, controlApi,
    ...(publicBaseUrl ? { publicBaseUrl } : {}),
  });
  const controlBase = controlApi ? new URL(iam.issuer).origin : undefined;
  process.stdout.write(banner(iam, mode, [...DEFAULT_USERS], DEFAULT_FRONTEND_CLIENT_ID, controlBase));

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.write(`dev-iam: ${signal} received, stopping\n`);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await iam.close();
}
