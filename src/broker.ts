import type { Logger } from 'pino';
import type { TokexConfig } from './shared/config.js';
import { createContext, type BrokerContext } from './shared/context.js';
import { startExchangeRole } from './worker/exchange-role.js';
import { startRefreshRole } from './worker/refresh-role.js';
import { startSchedulerRole } from './worker/scheduler-role.js';
import { startHttpRole } from './producer/http-role.js';

/** A started role; `close` stops it gracefully (bounded by SHUTDOWN_TIMEOUT_MS). */
export interface RunningRole {
  name: string;
  close(): Promise<void>;
}

/** The roles one process can run; `tokex start --roles` picks among them. */
export const ROLE_STARTERS = {
  worker: startExchangeRole,
  refresh: startRefreshRole,
  scheduler: startSchedulerRole,
  producer: (ctx: BrokerContext) => startHttpRole(ctx),
} satisfies Record<string, (ctx: BrokerContext) => Promise<RunningRole>>;

/** A role name. */
export type RoleName = keyof typeof ROLE_STARTERS;

/** Every role, in start order. */
export const ALL_ROLES = Object.keys(ROLE_STARTERS) as RoleName[];

/** A running broker. */
export interface Broker {
  context: BrokerContext;
  roles: RunningRole[];
  /** Stops the roles in reverse order, then closes the connections. */
  close(): Promise<void>;
}

/** Starts the given roles sharing one context. A role that fails to start stops the others. */
export async function startBroker(config: TokexConfig, logger: Logger, roles: RoleName[] = ALL_ROLES): Promise<Broker> {
  const context = createContext(config, logger);
  const running: RunningRole[] = [];
  const close = async () => {
    for (const role of [...running].reverse()) await role.close();
    await context.close();
  };
  try {
    for (const name of roles) running.push(await ROLE_STARTERS[name](context));
  } catch (err) {
    await close();
    throw err;
  }
  logger.info({ roles: running.map((r) => r.name) }, 'broker started');
  return { context, roles: running, close };
}
