import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Something that looks like a bearer token: a compact JWS/JWT, or a `tkx1.` envelope. */
const TOKEN_PATTERN = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|tkx1\.[A-Za-z0-9_-]{8,}/g;

/** Keys whose values are secret wherever they appear in a log object. */
const SECRET_KEYS = new Set([
  'subjectToken', 'subject_token', 'accessToken', 'access_token', 'refreshToken', 'refresh_token',
  'token', 'authorization', 'Authorization', 'client_secret', 'clientSecret', 'password', 'id_token',
]);
/** Keys of axios errors and requests that carry request bodies and headers: never logged. */
const DROPPED_KEYS = new Set(['config', 'request', 'response', 'headers', 'data', '_header']);

/** Replaces anything token-shaped in a string. */
export function scrubString(value: string): string {
  return value.replace(TOKEN_PATTERN, '[REDACTED]');
}

/** Deep copy of a log value with secrets removed; bounded depth so cycles cannot hang logging. */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 6) return '[Truncated]';
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Error) {
    const out: Record<string, unknown> = { type: value.name, message: scrubString(value.message) };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.stack) out.stack = scrubString(value.stack);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (DROPPED_KEYS.has(key)) continue;
    out[key] = SECRET_KEYS.has(key) ? '[REDACTED]' : scrub(v, depth + 1);
  }
  return out;
}

/** Options for {@link createLogger}. */
export interface CreateLoggerOptions {
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a capture stream. */
  destination?: DestinationStream;
  /** Bound into every line, e.g. `{ role: 'exchange-worker' }`. */
  base?: Record<string, unknown>;
}

/**
 * The project's pino logger. Every object, error and message passes through {@link scrub},
 * so a token cannot reach a log line at any level, even inside an axios error.
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'tokex', ...options.base },
      serializers: { err: (err: unknown) => scrub(err) },
      formatters: { log: (obj) => scrub(obj) as Record<string, unknown> },
      // Child bindings (logger.child({...})) skip the `log` formatter: pino's own redaction covers
      // their token-named keys, and the line-level scrub below their token-shaped values.
      redact: { paths: [...SECRET_KEYS], censor: '[REDACTED]' },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === 'string' ? scrubString(a) : a));
          return method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
    },
    scrubbedDestination(options.destination ?? pino.destination(1)),
  );
}

/** Last line of defence: every serialized line has anything token-shaped replaced before it is written. */
function scrubbedDestination(target: DestinationStream): DestinationStream {
  return { write: (line: string) => target.write(scrubString(line)) };
}
