import type { Account } from 'oidc-provider';
import type { DevIamUser } from './types.js';

/** Default users; fixed subs so demos and tests can refer to them. */
export const DEFAULT_USERS: readonly DevIamUser[] = [
  {
    username: 'alice',
    password: 'alice-password',
    sub: '5f0b8c1e-6a3d-4c2b-9e7f-1a2b3c4d5e01',
    email: 'alice@example.test',
  },
  {
    username: 'bob',
    password: 'bob-password',
    sub: '8d1e2f3a-4b5c-4d6e-8f70-9a0b1c2d3e02',
    email: 'bob@example.test',
  },
];

/** In-memory user directory backing findAccount and the password grant. */
export class AccountStore {
  readonly #bySub = new Map<string, DevIamUser>();
  readonly #byUsername = new Map<string, DevIamUser>();

  constructor(users: readonly DevIamUser[]) {
    for (const user of users) {
      this.#bySub.set(user.sub, user);
      // Keycloak usernames are case-insensitive.
      this.#byUsername.set(user.username.toLowerCase(), user);
    }
  }

  get all(): DevIamUser[] {
    return [...this.#bySub.values()];
  }

  bySub(sub: string): DevIamUser | undefined {
    return this.#bySub.get(sub);
  }

  byUsername(username: string): DevIamUser | undefined {
    return this.#byUsername.get(username.toLowerCase());
  }

  /** Returns the user when the credentials match, otherwise undefined. */
  authenticate(username: string, password: string): DevIamUser | undefined {
    const user = this.byUsername(username);
    return user && user.password === password ? user : undefined;
  }

  /** oidc-provider `findAccount` implementation. */
  findAccount = async (_ctx: unknown, sub: string): Promise<Account | undefined> => {
    const user = this.#bySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      claims: async () => ({
        sub: user.sub,
        preferred_username: user.username,
        ...(user.email ? { email: user.email } : {}),
      }),
    };
  };
}
