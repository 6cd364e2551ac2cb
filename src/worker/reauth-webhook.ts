import { hostname } from 'node:os';
import axios, { type AxiosInstance } from 'axios';
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { KeyLayout } from '../shared/keys.js';
import { sleep } from '../shared/timing.js';

/** Consumer group of the webhook on the events stream: each event is delivered by one broker process. */
export const REAUTH_WEBHOOK_GROUP = 'reauth-webhook';

/** Body POSTed to REAUTH_WEBHOOK_URL (JSON). Never contains a token. */
export interface ReauthWebhookPayload {
  type: 'reauth_required';
  userId: string;
  /** Why: the IAM's error and description, e.g. `invalid_grant: Offline session not active`. */
  reason: string;
  /** When the user was marked (ms since epoch). */
  atMs: number;
  /** Id of the entry on the events stream (for de-duplication by the receiver: delivery is at least once). */
  eventId: string;
}

/** Options of {@link ReauthWebhook}. */
export interface ReauthWebhookOptions {
  /** A connection this notifier may block on (it is closed with the notifier). */
  redis: RedisClient;
  keys: KeyLayout;
  url: string;
  logger: Logger;
  /** Delivery attempts per event. @defaultValue 5 */
  attempts?: number;
  /** First retry delay, doubled per attempt. @defaultValue 500 */
  backoffMs?: number;
  /** Per-request timeout. @defaultValue 5000 */
  timeoutMs?: number;
}

/** Idle time after which a webhook consumer with nothing pending is removed from the group. */
const CONSUMER_IDLE_PRUNE_MS = 60 * 60_000;

/**
 * Calls REAUTH_WEBHOOK_URL for every `reauth_required` event. It reads the events stream through a
 * consumer group, so an event recorded by any process (a refresh worker or a reader refreshing on
 * demand) is delivered once by one running refresh role, and events pending in a crashed process are
 * claimed after a minute. A delivery is retried with backoff; after the last attempt it is logged
 * and dropped (the state stays in the user's metadata and on the stream).
 */
export class ReauthWebhook {
  private readonly http: AxiosInstance;
  private readonly consumer = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly options: ReauthWebhookOptions) {
    this.http = axios.create({ timeout: options.timeoutMs ?? 5000, validateStatus: () => true });
  }

  /** Creates the consumer group (new events only, the first time) and starts delivering. */
  async start(): Promise<void> {
    try {
      await this.options.redis.xgroup('CREATE', this.options.keys.events, REAUTH_WEBHOOK_GROUP, '$', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    await this.pruneConsumers().catch((err: unknown) => this.options.logger.debug({ err }, 'could not prune idle webhook consumers'));
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Every process start adds a consumer name to the group: remove those of earlier processes that
   * hold no pending event and have been idle for an hour, so the group does not grow forever.
   */
  private async pruneConsumers(): Promise<void> {
    const { redis, keys } = this.options;
    const consumers = (await redis.xinfo('CONSUMERS', keys.events, REAUTH_WEBHOOK_GROUP)) as unknown[][];
    for (const fields of consumers) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) info[String(fields[i])] = fields[i + 1];
      if (info.name !== this.consumer && Number(info.pending) === 0 && Number(info.idle) > CONSUMER_IDLE_PRUNE_MS) {
        await redis.xgroup('DELCONSUMER', keys.events, REAUTH_WEBHOOK_GROUP, String(info.name));
      }
    }
  }

  /** Stops delivering; an event being delivered stays pending for another process. */
  async close(): Promise<void> {
    this.running = false;
    this.options.redis.disconnect();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    const { redis, keys, logger } = this.options;
    let lastClaimMs = 0;
    while (this.running) {
      try {
        if (Date.now() - lastClaimMs > 30_000) {
          lastClaimMs = Date.now();
          // Events a crashed process read but never acknowledged.
          const claimed = (await redis.xautoclaim(keys.events, REAUTH_WEBHOOK_GROUP, this.consumer, 60_000, '0-0', 'COUNT', 100)) as [string, [string, string[]][]];
          await this.deliverAll(claimed[1]);
        }
        const reply = (await redis.xreadgroup(
          'GROUP', REAUTH_WEBHOOK_GROUP, this.consumer, 'COUNT', 50, 'BLOCK', 2000, 'STREAMS', keys.events, '>',
        )) as [string, [string, string[]][]][] | null;
        if (reply) await this.deliverAll(reply[0][1]);
      } catch (err) {
        if (!this.running) return;
        logger.warn({ err }, 'reauth webhook could not read the events stream; retrying');
        await sleep(1000);
      }
    }
  }

  private async deliverAll(entries: [string, string[]][]): Promise<void> {
    for (const [id, fields] of entries) {
      if (!fields) continue; // deleted by trimming
      const event = toRecord(fields);
      if (event.state === 'reauth_required') {
        await this.deliver({ type: 'reauth_required', userId: event.user, reason: event.reason ?? '', atMs: Number(event.at), eventId: id });
      }
      await this.options.redis.xack(this.options.keys.events, REAUTH_WEBHOOK_GROUP, id);
    }
  }

  private async deliver(payload: ReauthWebhookPayload): Promise<void> {
    const attempts = this.options.attempts ?? 5;
    const log = this.options.logger.child({ userId: payload.userId, eventId: payload.eventId });
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      let outcome: string;
      try {
        const res = await this.http.post(this.options.url, payload);
        if (res.status >= 200 && res.status < 300) {
          log.debug('reauth webhook delivered');
          return;
        }
        outcome = `HTTP ${res.status}`;
      } catch (err) {
        outcome = `request failed (${(err as { code?: string }).code ?? 'unknown'})`;
      }
      if (attempt === attempts || !this.running) {
        log.error({ attempts: attempt, outcome }, 'reauth webhook not delivered; giving up on this event');
        return;
      }
      const delayMs = (this.options.backoffMs ?? 500) * 2 ** (attempt - 1);
      log.warn({ attempt, outcome, delayMs }, 'reauth webhook failed; retrying');
      await sleep(delayMs);
    }
  }
}

function toRecord(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) out[fields[i]] = fields[i + 1];
  return out;
}
