import type { FastifyInstance } from 'fastify';
import { revokeUser } from '../../../shared/revoke-user.js';
import { validateUserId } from '../../../shared/subject-token.js';
import { sendError } from '../errors.js';
import type { HttpApiDeps } from '../server.js';

const security = [{ apiKey: [] }];
const userParams = {
  type: 'object',
  required: ['userId'],
  properties: { userId: { type: 'string', description: 'The user id (the tokens\' sub)' } },
} as const;
const nullableNumber = { type: ['number', 'null'] } as const;

/** JSON schema of a TokenStatus (metadata only, never a token). */
const statusSchema = {
  type: 'object',
  required: ['userId', 'state', 'version', 'offline', 'refreshable', 'issuedAtMs', 'accessExpiresAtMs', 'refreshedAtMs', 'updatedAtMs'],
  properties: {
    userId: { type: 'string' },
    state: { type: 'string', enum: ['active', 'reauth_required', 'revoked'] },
    version: { type: 'integer' },
    username: { type: 'string' },
    offline: { type: 'boolean', description: 'The refresh token is an offline token' },
    refreshable: { type: 'boolean', description: 'A refresh token is stored' },
    scope: { type: 'string' },
    issuedAtMs: { type: 'number' },
    accessExpiresAtMs: { type: 'number' },
    refreshExpiresAtMs: { ...nullableNumber, description: 'Expiry of an online refresh token; null for offline tokens' },
    refreshedAtMs: { type: 'number' },
    updatedAtMs: { type: 'number' },
    dueAtMs: { ...nullableNumber, description: 'Next scheduled refresh; null when none' },
    reason: { type: 'string', description: 'Why the state is not active' },
  },
} as const;

/** `GET /v1/users/:userId` and `DELETE /v1/users/:userId/tokens`. */
export function registerUserRoutes(app: FastifyInstance, deps: HttpApiDeps): void {
  const { ctx } = deps;

  app.get('/v1/users/:userId', {
    schema: {
      summary: 'A user\'s token status (metadata only)',
      security,
      params: userParams,
      response: {
        200: statusSchema,
        400: { $ref: 'ErrorBody#' }, 401: { $ref: 'ErrorBody#' }, 404: { $ref: 'ErrorBody#' }, 503: { $ref: 'ErrorBody#' },
      },
    },
  }, async (request, reply) => {
    const userId = validateUserId((request.params as { userId: string }).userId) as string;
    const status = await ctx.store.status(userId);
    if (!status) return sendError(reply, 'not_found', `no tokens stored for ${userId}`);
    return status;
  });

  app.delete('/v1/users/:userId/tokens', {
    schema: {
      summary: 'Revoke a user: revoke the refresh token at the IAM, delete the stored tokens',
      description: 'The IAM is called first (when IAM_REVOCATION_URL is set); if it fails nothing is deleted and the answer is 502/503, so the call can be repeated.',
      security,
      params: userParams,
      response: {
        204: { type: 'null', description: 'Revoked' },
        400: { $ref: 'ErrorBody#' }, 401: { $ref: 'ErrorBody#' }, 404: { $ref: 'ErrorBody#' },
        502: { $ref: 'ErrorBody#' }, 503: { $ref: 'ErrorBody#' },
      },
    },
  }, async (request, reply) => {
    const userId = validateUserId((request.params as { userId: string }).userId) as string;
    await revokeUser({
      store: ctx.store,
      iam: ctx.config.iam.revocationUrl ? ctx.iam() : undefined,
      userId,
      reason: 'revoked_by_api',
      logger: request.log,
    });
    return reply.code(204).send();
  });
}
