// Thin GraphQL layer of the knowledge graph: check scopes and namespaces, validate arguments,
// call the graph store. Merged into the memory subgraph's resolvers by withParts (index.ts).
import type { DomainEvent } from '../../../runtime/events.ts';
import { eventStreamsOf } from '../../../runtime/event-streams.ts';
import { idempotentRequest } from '../../../runtime/idempotency.ts';
import { requireScopes } from '../../../runtime/identity.ts';
import { parseId } from '../../../runtime/ids.ts';
import { afterSequenceArg, eventIdentity } from '../../../runtime/scalars.ts';
import { badInput } from '../../../runtime/errors.ts';
import type { MemoryContext } from '../context.ts';
import { assertMayWrite, readablePrefixes } from '../domain.ts';
import type { Resolvers } from '../generated/resolvers-types.ts';
import {
  entityType,
  GRAPH_EVENTS,
  instant,
  historyLimit,
  listLimit,
  normaliseEntities,
  normaliseEntitySearch,
  normaliseExpand,
  normalisePath,
  normaliseRelations,
  type GraphEventPayload,
} from './domain.ts';
import { isReadable, type EntityRow, type GraphStore, type Readable } from './store.ts';

function reading(ctx: MemoryContext): Readable {
  requireScopes(ctx.identity, [['memory:read']]);
  return readablePrefixes(ctx.identity, undefined);
}

function writing(ctx: MemoryContext): MemoryContext {
  requireScopes(ctx.identity, [['memory:write']]);
  return ctx;
}

const may = (ctx: MemoryContext) => (e: EntityRow) => assertMayWrite(ctx.identity, e.namespace);

/** A relation may be written by a caller who may write one end and read both. */
const mayRelate = (ctx: MemoryContext) => (ends: EntityRow[]) => {
  const readable = readablePrefixes(ctx.identity, undefined);
  const unreadable = ends.find((e) => !isReadable(readable, e.namespace));
  if (unreadable) assertMayWrite(ctx.identity, unreadable.namespace);
  let denied: unknown = null;
  for (const e of ends) {
    try {
      assertMayWrite(ctx.identity, e.namespace);
      return;
    } catch (err) {
      denied = err;
    }
  }
  throw denied;
};

/**
 * The ends of many relations in one query per request tick (an expansion selecting
 * edges { source target } would otherwise read one entity per edge).
 */
const loaders = new WeakMap<object, (id: string) => Promise<EntityRow | undefined>>();

function entityLoader(graph: GraphStore, ctx: MemoryContext): (id: string) => Promise<EntityRow | undefined> {
  let loader = loaders.get(ctx);
  if (!loader) {
    const cache = new Map<string, Promise<EntityRow | undefined>>();
    let pending: { id: string; resolve: (e: EntityRow | undefined) => void; reject: (err: unknown) => void }[] = [];
    const flush = () => {
      const batch = pending;
      pending = [];
      graph.load(ctx.tenantId, [...new Set(batch.map((p) => p.id))]).then(
        (byId) => {
          for (const p of batch) p.resolve(byId.get(p.id));
        },
        (err: unknown) => {
          for (const p of batch) p.reject(err);
        },
      );
    };
    loader = (id) => {
      let found = cache.get(id);
      if (!found) {
        found = new Promise((resolve, reject) => {
          if (pending.length === 0) Promise.resolve().then(() => process.nextTick(flush));
          pending.push({ id, resolve, reject });
        });
        cache.set(id, found);
      }
      return found;
    };
    loaders.set(ctx, loader);
  }
  return loader;
}

function optionalType(value: string | null | undefined, field: string): string | null {
  return value == null ? null : entityType(value, field);
}

export function graphResolvers(graph: GraphStore): Resolvers {
  return {
    Query: {
      entity: (_parent, { id, asOf }, ctx) => graph.get(ctx.tenantId, parseId(id, 'id'), reading(ctx), instant(asOf, 'asOf', null)),
      entityByKey: (_parent, { type, key, asOf }, ctx) =>
        graph.getByKey(ctx.tenantId, entityType(type, 'type'), key, reading(ctx), instant(asOf, 'asOf', null)),
      expandGraph: (_parent, { input }, ctx) => graph.expand(ctx.tenantId, normaliseExpand(input, graph.nowIso()), reading(ctx)),
      shortestPath: (_parent, { input }, ctx) => graph.shortestPath(ctx.tenantId, normalisePath(input, graph.nowIso()), reading(ctx)),
      searchEntities: (_parent, { input }, ctx) => graph.search(ctx.tenantId, normaliseEntitySearch(input, graph.nowIso()), reading(ctx)),
    },
    Mutation: {
      upsertEntities: (_parent, args, ctx) =>
        graph.upsertEntities(ctx.tenantId, normaliseEntities(args.inputs, writing(ctx).identity), may(ctx), idempotentRequest(ctx, 'upsertEntities', args)),
      upsertRelations: (_parent, args, ctx) =>
        graph.upsertRelations(ctx.tenantId, normaliseRelations(writing(ctx) && args.inputs), mayRelate(ctx), idempotentRequest(ctx, 'upsertRelations', args)),
      mergeEntities: (_parent, { intoId, ids }, ctx) => {
        writing(ctx);
        if (ids.length === 0 || ids.length > 100) throw badInput('ids must have 1 to 100 entity ids', { field: 'ids' });
        return graph.merge(
          ctx.tenantId,
          parseId(intoId, 'intoId'),
          ids.map((id, i) => parseId(id, `ids[${i}]`)),
          may(ctx),
        );
      },
      deleteEntity: (_parent, { id, cascade }, ctx) => graph.delete(ctx.tenantId, parseId(id, 'id'), cascade ?? false, may(writing(ctx))),
    },
    Subscription: {
      graphChanged: {
        subscribe: (_parent, args, ctx) => {
          const readable = reading(ctx);
          const type = optionalType(args.entityType, 'entityType');
          return eventStreamsOf(ctx).stream({
            types: GRAPH_EVENTS,
            tenantId: ctx.tenantId,
            afterSequence: afterSequenceArg(args.afterSequence),
            filter: (event) => {
              const p = event.payload as GraphEventPayload;
              return (type === null || p.entityTypes.includes(type)) && (p.namespace === null || isReadable(readable, p.namespace));
            },
          });
        },
        resolve: (event: DomainEvent) => {
          const p = event.payload as GraphEventPayload;
          return {
            change: p.change,
            entityTypes: p.entityTypes,
            entityId: p.entityId,
            relationId: p.relationId,
            occurredAt: event.occurredAt,
            ...eventIdentity(event),
          };
        },
      },
    },
    Entity: {
      __resolveReference: (ref, ctx) => graph.get(ctx.tenantId, ref.id, reading(ctx)),
      memoryIds: (entity, _args, ctx) => graph.memoryIds(ctx.tenantId, entity.id),
      history: (entity, { first }, ctx) => graph.history(ctx.tenantId, entity.id, historyLimit(first)),
      memories: async (entity, _args, ctx) => {
        const ids = await graph.memoryIds(ctx.tenantId, entity.id);
        const rows = await Promise.all(ids.map((id) => ctx.store.get(ctx.tenantId, id)));
        return rows.flatMap((r) => (r ? [r] : []));
      },
      relations: (entity, args, ctx) =>
        graph.relations(ctx.tenantId, entity.id, {
          type: optionalType(args.type, 'type'),
          direction: args.direction ?? 'BOTH',
          asOf: instant(args.asOf, 'asOf', graph.nowIso()),
          history: args.history ?? false,
          limit: listLimit(args.first),
        }),
      neighbours: (entity, args, ctx) =>
        graph.neighbours(
          ctx.tenantId,
          entity.id,
          {
            type: optionalType(args.relationType, 'relationType'),
            direction: args.direction ?? 'BOTH',
            asOf: instant(args.asOf, 'asOf', graph.nowIso()),
            history: false,
            limit: listLimit(args.first),
          },
          reading(ctx),
        ),
    },
    Relation: {
      source: async (r, _args, ctx) => (await entityLoader(graph, ctx)(r.sourceId)) as EntityRow,
      target: async (r, _args, ctx) => (await entityLoader(graph, ctx)(r.targetId)) as EntityRow,
    },
    Memory: {
      entities: (memory, _args, ctx) => graph.entitiesOfMemory(ctx.tenantId, memory.id, reading(ctx)),
    },
    Agent: {
      knowledge: (agent, { type, first }, ctx) => {
        const readable = reading(ctx);
        return graph
          .inNamespace(ctx.tenantId, `agents/${agent.id}`, optionalType(type, 'type'), listLimit(first))
          .then((rows) => rows.filter((e) => isReadable(readable, e.namespace)));
      },
    },
  };
}

/** The memory subgraph's resolvers with the graph's merged in, type by type. */
/** The memory subgraph's resolvers with the knowledge graph's and other parts' merged in, type by type. */
export function withParts(base: Resolvers, graph: GraphStore, ...parts: Resolvers[]): Resolvers {
  const merged: Record<string, unknown> = { ...base };
  for (const part of [graphResolvers(graph), ...parts]) {
    for (const [type, fields] of Object.entries(part)) {
      const existing = merged[type] as Record<string, unknown> | undefined;
      merged[type] = existing ? { ...existing, ...(fields as Record<string, unknown>) } : fields;
    }
  }
  return merged as Resolvers;
}
