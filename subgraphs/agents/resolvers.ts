// Thin GraphQL layer: validate arguments, call the domain and the store, return rows.
import { GraphQLError } from 'graphql';
import { notFound } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { idempotentRequest, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { newId, parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import type { AgentsContext } from './context.ts';
import { notRegistered, type IssuedCredential } from './credentials.ts';
import {
  assertAgentMayAct,
  AgentHeartbeat,
  AgentRegistered,
  AgentStatusChanged,
  deriveHealth,
  normaliseFilter,
  normaliseRegistration,
  normaliseUpdate,
  registrationFromCard,
  type AgentRegisteredPayload,
  type AgentAction,
  type AgentDraft,
  type AgentStatusChangedPayload,
  type StatusAction,
} from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import type { AgentRow } from './store.ts';

// Defence in depth: the gateway already removed what the caller's scopes do not allow
// (@requiresScopes in schema/agents.graphql); these refuse it again from the signed identity.
function reading(ctx: AgentsContext): AgentsContext {
  requireScopes(ctx.identity, [['agents:read']]);
  return ctx;
}

function writing(ctx: AgentsContext): AgentsContext {
  requireScopes(ctx.identity, [['agents:write']]);
  return ctx;
}

/**
 * A write to agent `id` by this caller: agents:write, and an agent caller only on itself
 * (domain.assertAgentMayAct). Returns the parsed id.
 */
function actingOn(ctx: AgentsContext, action: AgentAction, id: string): string {
  writing(ctx);
  const agentId = parseId(id, 'id');
  assertAgentMayAct(ctx.identity.agentId, action, agentId);
  return agentId;
}

/**
 * Stores the agent; with a credential, mints it first under the agent's id-to-be, so there is
 * never an agent whose credential the caller was promised and did not get: governance refusing
 * or unreachable means no agent (the error says so), and an agent that cannot be stored after
 * all gets its fresh credential revoked. A crash between the two leaves at most a credential of
 * an agent that does not exist, which can act on nothing.
 */
async function register(
  ctx: AgentsContext,
  draft: AgentDraft,
  issueCredential: boolean | null | undefined,
  request: IdempotentRequest | undefined,
): Promise<AgentRow> {
  writing(ctx);
  assertAgentMayAct(ctx.identity.agentId, 'register', null);
  // A repeat of a committed keyed registration answers the agent as stored; its credential was
  // shown once, in the first answer, and is not issued again.
  if (!issueCredential || (await ctx.store.registered(request))) return remember(ctx, await ctx.store.register(ctx.tenantId, draft, undefined, request));
  const caller = { tenantId: ctx.tenantId, onBehalfOf: ctx.identity.subject, requestId: ctx.requestId };
  const id = newId();
  let credential: IssuedCredential;
  try {
    credential = await ctx.credentials.issue(caller, id, draft.name);
  } catch (err) {
    throw err instanceof GraphQLError ? notRegistered(err) : err;
  }
  let row: AgentRow;
  try {
    row = await ctx.store.register(ctx.tenantId, draft, id, request);
  } catch (err) {
    await ctx.credentials
      .revoke(caller, credential.keyId)
      .catch((revokeErr: unknown) =>
        ctx.logger.error({ err: revokeErr, keyId: credential.keyId, agentId: id }, 'could not revoke the credential of an agent that was not stored'),
      );
    throw err;
  }
  if (row.id !== id) {
    // A concurrent request with the same key registered the agent first: this credential is bound
    // to an agent that was never stored.
    await ctx.credentials
      .revoke(caller, credential.keyId)
      .catch((revokeErr: unknown) =>
        ctx.logger.error({ err: revokeErr, keyId: credential.keyId, agentId: id }, 'could not revoke the credential of a repeated registration'),
      );
    return remember(ctx, row);
  }
  return remember(ctx, { ...row, credential });
}

/** Later reads in the same request (e.g. an _entities batch) see what this mutation wrote. */
function remember(ctx: AgentsContext, row: AgentRow): AgentRow {
  ctx.agentLoader.clear(row.id).prime(row.id, row);
  return row;
}

async function changeStatus(ctx: AgentsContext, id: string, action: StatusAction, expectedVersion?: number | null): Promise<AgentRow> {
  return remember(ctx, await ctx.store.changeStatus(ctx.tenantId, actingOn(ctx, action, id), action, expectedVersion));
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

// --- Subscriptions: domain events from the bus, one agent's or the whole tenant's ---------------

/** A subscription's optional id filter, checked before anything is subscribed. */
function optionalId(value: string | null | undefined, argument: string): string | null {
  return value === null || value === undefined ? null : parseId(value, argument);
}

function agentEvents(ctx: AgentsContext, types: string[], args: { agentId?: string | null; afterSequence?: number | null }) {
  const id = optionalId(args.agentId, 'agentId');
  const afterSequence = afterSequenceArg(args.afterSequence);
  return eventStreamsOf(reading(ctx)).stream({ types, tenantId: ctx.tenantId, afterSequence, filter: (event) => id === null || event.subjectId === id });
}

/** The agent as it is now: each event runs with a fresh context, so this is a fresh read. */
async function eventAgent(ctx: AgentsContext, event: DomainEvent): Promise<AgentRow> {
  const agent = await ctx.agentLoader.load(event.subjectId);
  // Agents are never deleted: a missing one is corrupted data, reported as such.
  if (!agent) throw notFound('Agent', event.subjectId);
  return agent;
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,
  Query: {
    agent: (_parent, { id }, ctx) => reading(ctx).agentLoader.load(parseId(id, 'id')),
    agents: (_parent, { filter, first, after }, ctx) => reading(ctx).store.list(ctx.tenantId, normaliseFilter(filter), pageRequest({ first, after })),
  },
  Mutation: {
    registerAgent: (_parent, args, ctx) =>
      register(writing(ctx), normaliseRegistration(args.input), args.issueCredential, idempotentRequest(ctx, 'registerAgent', args)),
    registerAgentFromCard: (_parent, args, ctx) =>
      register(
        writing(ctx),
        registrationFromCard(args.card, { labels: args.labels, heartbeatIntervalSeconds: args.heartbeatIntervalSeconds }),
        args.issueCredential,
        idempotentRequest(ctx, 'registerAgentFromCard', args),
      ),
    updateAgent: async (_parent, { id, input, expectedVersion }, ctx) => {
      const agentId = actingOn(ctx, 'update', id);
      return remember(ctx, await ctx.store.update(ctx.tenantId, agentId, normaliseUpdate(input), expectedVersion));
    },
    activateAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'activate', expectedVersion),
    pauseAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'pause', expectedVersion),
    resumeAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'resume', expectedVersion),
    retireAgent: (_parent, { id, expectedVersion }, ctx) => changeStatus(ctx, id, 'retire', expectedVersion),
    recordHeartbeat: async (_parent, { id }, ctx) => remember(ctx, await ctx.store.recordHeartbeat(ctx.tenantId, actingOn(ctx, 'heartbeat', id))),
  },
  Subscription: {
    agentStatusChanged: {
      subscribe: (_parent, args, ctx) => agentEvents(ctx, [AgentStatusChanged, AgentRegistered], args),
      resolve: async (event: DomainEvent, _args: unknown, ctx: AgentsContext) => {
        const agent = await eventAgent(ctx, event);
        if (event.type === AgentRegistered)
          return { agent, from: null, to: (event.payload as AgentRegisteredPayload).status, occurredAt: event.occurredAt, ...eventIdentity(event) };
        const { from, to } = event.payload as AgentStatusChangedPayload;
        return { agent, from, to, occurredAt: event.occurredAt, ...eventIdentity(event) };
      },
    },
    agentHeartbeat: {
      subscribe: (_parent, args, ctx) => agentEvents(ctx, [AgentHeartbeat], args),
      resolve: async (event: DomainEvent, _args: unknown, ctx: AgentsContext) => ({
        agent: await eventAgent(ctx, event),
        occurredAt: event.occurredAt,
        ...eventIdentity(event),
      }),
    },
  },
  Agent: {
    __resolveReference: (reference, ctx) => {
      // Reached through Task.agent, which requires agents:read.
      reading(ctx);
      const id = referenceId(reference.id);
      return id === null ? null : ctx.agentLoader.load(id);
    },
    health: (agent, _args, ctx) => deriveHealth(agent.lastHeartbeatAt, agent.heartbeatIntervalSeconds, ctx.now()),
    credential: (agent) => agent.credential ?? null,
  },
};
