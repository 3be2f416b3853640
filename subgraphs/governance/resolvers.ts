// Thin GraphQL layer: check the caller (again: the gateway already enforced @requiresScopes),
// validate arguments, call the store.
import { parseId } from '../../runtime/ids.ts';
import { GraphQLError } from 'graphql';
import { agentMismatch } from '../../runtime/errors.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes, type RequestIdentity } from '../../runtime/identity.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { scalarResolvers } from '../../runtime/scalars.ts';
import type { GovernanceContext } from './context.ts';
import { agentCredentialName, normaliseCreateInput, normaliseOverlap } from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';

/** Mirrors @requiresScopes(scopes: [["admin"]]) in schema/governance.graphql. */
const ADMIN = [['admin']] as const;
/** Mirrors rotateAgentCredential's @requiresScopes. */
const ROTATE = [['admin'], ['agents:write']] as const;

function admin(ctx: GovernanceContext) {
  return requireScopes(ctx.identity, ADMIN);
}

// Far longer than a well-formed key (ap_ + 16 + _ + 43 characters); longer input is not looked at.
const MAX_KEY_LENGTH = 256;

/** The agents subgraph signs `subgraph:agents`, or `subgraph:agents:<subject it serves>`. */
const AGENTS_SUBGRAPH = /^subgraph:agents(?::(.+))?$/;

/**
 * The agents subgraph calling for a tenant (runtime/service-client.ts), with the scope it needs:
 * nobody else mints agent credentials. Gives whom the registration was for, kept as createdBy.
 */
function agentsSubgraph(identity: RequestIdentity): { tenantId: string; onBehalfOf: string } {
  const match = identity.kind === 'service' && identity.subject ? AGENTS_SUBGRAPH.exec(identity.subject) : null;
  if (!match || identity.tenantId === null || !identity.scopes.includes('agents:write')) {
    throw new GraphQLError('Only the agents subgraph issues agent credentials', { extensions: { code: 'FORBIDDEN' } });
  }
  return { tenantId: identity.tenantId, onBehalfOf: match[1] ?? identity.subject! };
}

export const resolvers: Resolvers = {
  DateTime: scalarResolvers.DateTime,
  Query: {
    apiKeys: (_parent, { first, after, includeRevoked, agentId }, ctx) =>
      ctx.store.list(
        admin(ctx).tenantId,
        { includeRevoked: includeRevoked ?? false, agentId: agentId === null || agentId === undefined ? null : parseId(agentId, 'agentId') },
        pageRequest({ first, after }),
      ),
    apiKey: (_parent, { id }, ctx) => ctx.store.get(admin(ctx).tenantId, parseId(id, 'id')),
    verifyApiKey: (_parent, { key }, ctx) => {
      // Only the gateway calls this (the field is @inaccessible), for itself, before it knows the
      // caller: a caller's identity (even an admin's) may not probe keys.
      if (ctx.identity.kind !== 'service') throw new GraphQLError('Only the gateway verifies API keys', { extensions: { code: 'FORBIDDEN' } });
      return key.length > MAX_KEY_LENGTH ? null : ctx.store.verify(key);
    },
  },
  Mutation: {
    createApiKey: (_parent, args, ctx) => {
      const caller = admin(ctx);
      return ctx.store.create(caller.tenantId, normaliseCreateInput(args.input), caller.subject, idempotentRequest(ctx, 'createApiKey', args));
    },
    revokeApiKey: (_parent, { id }, ctx) => {
      const caller = admin(ctx);
      return ctx.store.revoke(caller.tenantId, parseId(id, 'id'), caller.subject);
    },
    rotateAgentCredential: (_parent, { agentId, overlapSeconds }, ctx) => {
      const caller = requireScopes(ctx.identity, ROTATE);
      const id = parseId(agentId, 'agentId');
      // An agent rotates its own credential (after a leak, on a schedule), never another's.
      if (caller.agentId && caller.agentId !== id) {
        throw agentMismatch(`This credential acts as agent "${caller.agentId}" and cannot rotate the credentials of agent "${id}"`, {
          agentId: caller.agentId,
        });
      }
      return ctx.store.rotateAgentCredential(caller.tenantId, id, normaliseOverlap(overlapSeconds), caller.subject);
    },
    issueAgentCredential: (_parent, { agentId, name }, ctx) => {
      const caller = agentsSubgraph(ctx.identity);
      return ctx.store.issueAgentCredential(caller.tenantId, parseId(agentId, 'agentId'), agentCredentialName(name), caller.onBehalfOf);
    },
  },
};
