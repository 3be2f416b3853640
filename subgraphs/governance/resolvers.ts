// Thin GraphQL layer: check the caller (again: the gateway already enforced @requiresScopes),
// validate arguments, call the store.
import { parseId } from '../../runtime/ids.ts';
import { GraphQLError } from 'graphql';
import { requireScopes } from '../../runtime/identity.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { scalarResolvers } from '../../runtime/scalars.ts';
import type { GovernanceContext } from './context.ts';
import { normaliseCreateInput } from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';

/** Mirrors @requiresScopes(scopes: [["admin"]]) in schema/governance.graphql. */
const ADMIN = [['admin']] as const;

function admin(ctx: GovernanceContext) {
  return requireScopes(ctx.identity, ADMIN);
}

// Far longer than a well-formed key (ap_ + 16 + _ + 43 characters); longer input is not looked at.
const MAX_KEY_LENGTH = 256;

export const resolvers: Resolvers = {
  DateTime: scalarResolvers.DateTime,
  Query: {
    apiKeys: (_parent, { first, after, includeRevoked }, ctx) =>
      ctx.store.list(admin(ctx).tenantId, { includeRevoked: includeRevoked ?? false }, pageRequest({ first, after })),
    apiKey: (_parent, { id }, ctx) => ctx.store.get(admin(ctx).tenantId, parseId(id, 'id')),
    verifyApiKey: (_parent, { key }, ctx) => {
      // Only the gateway calls this (the field is @inaccessible), for itself, before it knows the
      // caller: a caller's identity (even an admin's) may not probe keys.
      if (ctx.identity.kind !== 'service') throw new GraphQLError('Only the gateway verifies API keys', { extensions: { code: 'FORBIDDEN' } });
      return key.length > MAX_KEY_LENGTH ? null : ctx.store.verify(key);
    },
  },
  Mutation: {
    createApiKey: (_parent, { input }, ctx) => {
      const caller = admin(ctx);
      return ctx.store.create(caller.tenantId, normaliseCreateInput(input), caller.subject);
    },
    revokeApiKey: (_parent, { id }, ctx) => {
      const caller = admin(ctx);
      return ctx.store.revoke(caller.tenantId, parseId(id, 'id'), caller.subject);
    },
  },
};
