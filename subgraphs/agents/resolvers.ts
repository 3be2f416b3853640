// Thin GraphQL layer: validate arguments, call the domain and the store, return rows.
import { parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { scalarResolvers } from '../../runtime/scalars.ts';
import type { AgentsContext } from './context.ts';
import { deriveHealth, normaliseFilter, normaliseRegistration, normaliseUpdate, registrationFromCard, type StatusAction } from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import type { AgentRow } from './store.ts';

/** Later reads in the same request (e.g. an _entities batch) see what this mutation wrote. */
function remember(ctx: AgentsContext, row: AgentRow): AgentRow {
  ctx.agentLoader.clear(row.id).prime(row.id, row);
  return row;
}

async function changeStatus(ctx: AgentsContext, id: string, action: StatusAction, expectedVersion?: number | null): Promise<AgentRow> {
  return remember(ctx, await ctx.store.changeStatus(ctx.tenantId, parseId(id, 'id'), action, expectedVersion));
}

/**
 * A reference whose id is not a UUID names no agent: the gateway gets null for it (like any
 * unknown id) rather than failing the whole _entities batch.
 */
function referenceId(id: string): string | null {
  try {
    return parseId(id, 'id');
  } catch {
    return null;
  }
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  Query: {
    agent: (_parent, { id }, ctx) => ctx.agentLoader.load(parseId(id, 'id')),
    agents: (_parent, { filter, first, after }, ctx) => ctx.store.list(ctx.tenantId, normaliseFilter(filter), pageRequest({ first, after })),
  },
  Mutation: {
    registerAgent: async (_parent, { input }, ctx) => remember(ctx, await ctx.store.register(ctx.tenantId, normaliseRegistration(input))),
    registerAgentFromCard: async (_parent, { card, labels, heartbeatIntervalSeconds }, ctx) =>
      remember(ctx, await ctx.store.register(ctx.tenantId, registrationFromCard(card, { labels, heartbeatIntervalSeconds }))),
    updateAgent: async (_parent, { id, input, expectedVersion }, ctx) => {
      const agentId = parseId(id, 'id');
      return remember(ctx, await ctx.store.update(ctx.tenantId, agentId, normaliseUpdate(input), expectedVersion));
    },
    activateAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'activate', expectedVersion),
    pauseAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'pause', expectedVersion),
    resumeAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'resume', expectedVersion),
    retireAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'retire', expectedVersion),
    recordHeartbeat: async (_parent, { id }, ctx) => remember(ctx, await ctx.store.recordHeartbeat(ctx.tenantId, parseId(id, 'id'))),
  },
  Agent: {
    __resolveReference: (reference, ctx) => {
      const id = referenceId(reference.id);
      return id === null ? null : ctx.agentLoader.load(id);
    },
    health: (agent, _args, ctx) => deriveHealth(agent.lastHeartbeatAt, agent.heartbeatIntervalSeconds, ctx.now()),
  },
};
