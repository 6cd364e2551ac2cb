/**
 * Minimal ambient types for oidc-provider 8.x (the package ships no types).
 * Only the surface used by the development IAM is declared; untyped internals
 * stay behind `unknown` so loose typing does not leak into the rest of the code.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The subset of a Koa context the dev IAM touches. */
  export interface KoaContext {
    method: string;
    path: string;
    url: string;
    status: number;
    body: unknown;
    req: IncomingMessage;
    set(field: string, value: string): void;
    get(field: string): string;
    /** Set by oidc-provider on its own routes; absent before routing. */
    oidc?: OIDCContext;
  }
  export type KoaNext = () => Promise<unknown>;
  export type Middleware = (ctx: KoaContext, next: KoaNext) => Promise<unknown>;

  export type ParamValue = string | string[] | undefined;

  export interface OIDCContext {
    params: Record<string, ParamValue>;
    /** Parsed request body (form fields), set once oidc-provider parsed it. */
    body?: Record<string, ParamValue>;
    client?: Client;
    entities: Record<string, unknown>;
    entity(key: string, value: unknown): void;
  }

  export interface Client {
    clientId: string;
    clientAuthMethod: string;
    grantTypeAllowed(grantType: string): boolean;
  }

  export interface ResourceServerInfo {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: 'jwt' | 'opaque';
    jwt?: { sign?: { alg: string; kid?: string } };
  }

  export class ResourceServer {
    constructor(identifier: string, info: ResourceServerInfo);
    identifier(): string;
    readonly scopes: Set<string>;
    accessTokenTTL?: number;
  }

  export interface TokenProps {
    accountId?: string;
    client?: Client;
    grantId?: string;
    gty?: string;
    scope?: string;
    sid?: string;
    resource?: string;
    expiresIn?: number;
    expiresWithSession?: boolean;
    sessionUid?: string;
  }

  export interface BaseTokenInstance {
    jti?: string;
    iat?: number;
    exp?: number;
    accountId?: string;
    clientId?: string;
    grantId?: string;
    gty?: string;
    sid?: string;
    scope?: string;
    consumed?: number;
    readonly expiration: number;
    readonly scopes: Set<string>;
    readonly isExpired: boolean;
    readonly isValid: boolean;
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface AccessTokenInstance extends BaseTokenInstance {
    resourceServer?: ResourceServer;
    aud?: string | string[];
  }

  export interface RefreshTokenInstance extends BaseTokenInstance {
    resource?: string | string[];
  }

  export interface GrantInstance {
    jti?: string;
    accountId?: string;
    clientId?: string;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface AdapterPayload {
    [key: string]: unknown;
    grantId?: string;
    uid?: string;
    userCode?: string;
    consumed?: number;
  }

  /** Storage adapter contract (see oidc-provider's example adapters). */
  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface FindOptions { ignoreExpiration?: boolean }

  export interface TokenModel<T> {
    new (props: TokenProps): T;
    find(value: string, options?: FindOptions): Promise<T | undefined>;
    readonly adapter: Adapter;
  }

  export interface GrantModel {
    new (props: { accountId: string; clientId: string }): GrantInstance;
    find(id: string, options?: FindOptions): Promise<GrantInstance | undefined>;
    readonly adapter: Adapter;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string): Promise<Record<string, unknown>>;
  }

  /** Configuration object; validated by oidc-provider itself at runtime. */
  export type Configuration = Record<string, unknown>;

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    readonly AccessToken: TokenModel<AccessTokenInstance>;
    readonly RefreshToken: TokenModel<RefreshTokenInstance>;
    readonly Grant: GrantModel;
    readonly ResourceServer: typeof ResourceServer;
    readonly Client: { find(id: string): Promise<Client | undefined> };
    use(middleware: Middleware): void;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    registerGrantType(
      name: string,
      handler: Middleware,
      params?: string[] | Set<string>,
      dupes?: string[] | Set<string>,
    ): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
  export default Provider;

  export namespace errors {
    class OIDCProviderError extends Error {
      constructor(status: number, message: string);
      error: string;
      error_description?: string;
      status: number;
      statusCode: number;
      expose: boolean;
    }
  }
}

declare module 'oidc-provider/lib/actions/grants/refresh_token.js' {
  import type { Middleware } from 'oidc-provider';
  /** The built-in refresh_token grant handler, wrapped by refresh-grant.ts. */
  export const handler: Middleware;
  export const parameters: Set<string>;
}
