import { errors } from 'oidc-provider';

/**
 * An error oidc-provider renders as `{ error, error_description }` with the
 * given status. Used so grant handlers answer with Keycloak's exact codes and
 * descriptions (oidc-provider's own error classes have fixed statuses).
 */
export function kcError(status: number, error: string, description: string): Error {
  const err = new errors.OIDCProviderError(status, error);
  err.error_description = description;
  err.expose = true;
  return err;
}

/** Error code of an oidc-provider error, if it is one. */
export function oidcErrorCode(err: unknown): string | undefined {
  return err instanceof errors.OIDCProviderError ? err.error : undefined;
}
