// Thin GraphQL layer: check scopes and namespaces, validate arguments, call the store.
import { conflict } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import type { MemoryContext } from './context.ts';
import {
  assertMayWrite,
  CHANGE_OF,
  MEMORY_EVENTS,
  namespacePath,
  normaliseBatch,
  normaliseFilter,
  normalisePatch,
  normaliseRemember,
  normaliseSearch,
  readablePrefixes,
  underPrefix,
  type MemoryDraft,
  type MemoryEventPayload,
  type MemoryFilter,
} from './domain.ts';
import type { MemoryFilter as MemoryFilterArgs, Resolvers } from './generated/resolvers-types.ts';
import type { MemoryRow, Scope } from './store.ts';

// Defence in depth: the gateway already removed what the caller's scopes do not allow.
function reading(ctx: MemoryContext): MemoryContext {
  requireScopes(ctx.identity, [['memory:read']]);
  return ctx;
}

function writing(ctx: MemoryContext): MemoryContext {
  requireScopes(ctx.identity, [['memory:write']]);
  return ctx;
}

/** What this caller may read of the filter: an agent its own namespaces and shared ones. */
function scopeOf(ctx: MemoryContext, filter: MemoryFilter): Scope {
  return { prefixes: readablePrefixes(ctx.identity, filter.namespacePrefix), filter };
}

/** A single memory is readable when its namespace lies in what the caller may read. */
function readable(ctx: MemoryContext, row: MemoryRow | null): MemoryRow | null {
  if (!row) return null;
  const prefixes = readablePrefixes(ctx.identity, undefined);
  return prefixes === null || prefixes.some((p) => underPrefix(row.namespace, p)) ? row : null;
}

/**
 * Drafts without a vector get one from the embeddings provider, when there is one, all in one
 * batch before the transaction: a provider failure writes nothing.
 */
async function embedded(ctx: MemoryContext, drafts: MemoryDraft[]): Promise<MemoryDraft[]> {
  const embedder = ctx.embedder;
  const missing = drafts.filter((d) => d.vector === null);
  if (!embedder || missing.length === 0) return drafts;
  const vectors = await embedder.embed(missing.map((d) => d.text));
  let next = 0;
  return drafts.map((d) => (d.vector !== null ? d : { ...d, vector: vectors[next++] ?? null, embeddingModel: embedder.model }));
}

function list(
  ctx: MemoryContext,
  filter: MemoryFilterArgs | null | undefined,
  first: number | null | undefined,
  after: string | null | undefined,
  extra: Partial<MemoryFilter> = {},
) {
  const page = pageRequest({ first, after });
  return ctx.store.list(ctx.tenantId, scopeOf(ctx, { ...normaliseFilter(filter), ...extra }), page);
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,
  Query: {
    memory: async (_parent, { id }, ctx) => readable(ctx, await reading(ctx).store.get(ctx.tenantId, parseId(id, 'id'))),
    memories: (_parent, { filter, first, after }, ctx) => list(reading(ctx), filter, first, after),
    memoryHistory: async (_parent, { id }, ctx) => {
      const memoryId = parseId(id, 'id');
      const current = readable(ctx, await reading(ctx).store.get(ctx.tenantId, memoryId));
      return current ? ctx.store.history(ctx.tenantId, memoryId) : [];
    },
    memoryVectorIndex: (_parent, _args, ctx) => reading(ctx).store.vectorIndexStatus(ctx.tenantId),
    searchMemories: async (_parent, { input }, ctx) => {
      reading(ctx);
      // Words without a vector, and a provider: search by meaning too (HYBRID unless told LEXICAL).
      const text = input.text?.trim();
      const embedder = ctx.embedder;
      const embed = embedder && text && text.length <= 1000 && (input.vector === null || input.vector === undefined) && input.mode !== 'LEXICAL';
      const vector = embed ? (await embedder.embed([text]))[0] : undefined;
      const req = normaliseSearch(vector ? { ...input, vector } : input);
      return reading(ctx).store.search(ctx.tenantId, scopeOf(ctx, req.filter), req);
    },
  },
  Mutation: {
    remember: async (_parent, args, ctx) => {
      const draft = normaliseRemember(args.input, writing(ctx).identity, ctx.store.now());
      const [row] = await ctx.store.remember(ctx.tenantId, await embedded(ctx, [draft]), idempotentRequest(ctx, 'remember', args));
      // remember stores exactly one; only a keyed repeat of a since-forgotten memory finds none.
      if (!row)
        throw conflict('The memory this Idempotency-Key stored has been forgotten since; use a new key to remember it again', { header: 'Idempotency-Key' });
      return row;
    },
    rememberBatch: async (_parent, args, ctx) =>
      ctx.store.remember(
        ctx.tenantId,
        await embedded(ctx, normaliseBatch(args.inputs, writing(ctx).identity, ctx.store.now())),
        idempotentRequest(ctx, 'rememberBatch', args),
      ),
    updateMemory: async (_parent, { id, input, expectedVersion }, ctx) => {
      const patch = normalisePatch(input, writing(ctx).store.now());
      // New text without a new vector: the old vector would describe the old text.
      if (patch.text !== undefined && patch.vector === undefined && ctx.embedder) {
        const [vector] = await ctx.embedder.embed([patch.text]);
        Object.assign(patch, { vector: vector ?? null, embeddingModel: ctx.embedder.model });
      }
      return ctx.store.update(ctx.tenantId, parseId(id, 'id'), patch, expectedVersion, (current) => assertMayWrite(ctx.identity, current.namespace));
    },
    forget: (_parent, { id }, ctx) => writing(ctx).store.forget(ctx.tenantId, parseId(id, 'id'), (current) => assertMayWrite(ctx.identity, current.namespace)),
    forgetMemories: async (_parent, { filter }, ctx) => {
      writing(ctx);
      // Never "everything": the filter names the namespace it deletes from, and the caller must
      // be allowed to write there.
      const f = normaliseFilter(filter);
      const prefix = namespacePath(filter.namespacePrefix ?? '', 'filter.namespacePrefix');
      assertMayWrite(ctx.identity, prefix);
      return { forgotten: await ctx.store.forgetMatching(ctx.tenantId, { prefixes: [prefix], filter: f }) };
    },
  },
  Subscription: {
    memoryWritten: {
      subscribe: (_parent, args, ctx) => {
        reading(ctx);
        const prefixes = readablePrefixes(ctx.identity, args.namespacePrefix == null ? undefined : namespacePath(args.namespacePrefix, 'namespacePrefix'));
        return eventStreamsOf(ctx).stream({
          types: MEMORY_EVENTS,
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(args.afterSequence),
          filter: (event) => prefixes === null || prefixes.some((p) => underPrefix((event.payload as MemoryEventPayload).namespace, p)),
        });
      },
      resolve: (event: DomainEvent) => {
        const payload = event.payload as MemoryEventPayload;
        return {
          change: CHANGE_OF[event.type] ?? 'UPDATED',
          memoryId: payload.memoryId,
          namespace: payload.namespace,
          occurredAt: event.occurredAt,
          ...eventIdentity(event),
        };
      },
    },
  },
  MemoryWrittenEvent: {
    // The memory as it is now: each event runs with a fresh context, so this is a fresh read.
    memory: (event, _args, ctx) => ctx.store.get(ctx.tenantId, event.memoryId),
  },
  Agent: {
    memories: (agent, { filter, first, after }, ctx) => {
      const own = `agents/${agent.id}`;
      const f = normaliseFilter(filter);
      const prefix = f.namespacePrefix !== undefined && underPrefix(f.namespacePrefix, own) ? f.namespacePrefix : own;
      return list(reading(ctx), { ...filter, namespacePrefix: prefix }, first, after);
    },
  },
  Task: {
    memories: (task, { filter, first, after }, ctx) => list(reading(ctx), filter, first, after, { sourceTaskId: task.id }),
  },
};
