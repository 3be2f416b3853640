// Thin GraphQL layer of working memory: namespaces checked as for memories, arguments validated,
// then the store (SQL or Redis). Merged into the memory subgraph's resolvers (index.ts).
import { requireScopes } from '../../../runtime/identity.ts';
import type { MemoryContext } from '../context.ts';
import { assertMayWrite, readablePrefixes } from '../domain.ts';
import type { Resolvers } from '../generated/resolvers-types.ts';
import { isReadable } from '../graph/store.ts';
import {
  encodeValue,
  entryKey,
  entryNamespace,
  expectedVersion,
  expiryOf,
  incrementBy,
  type WorkingMemoryEntryRow,
  type WorkingMemoryLimits,
} from './domain.ts';
import type { WorkingMemoryStore } from './store.ts';

/** The namespace, checked for a write by this caller. */
function writable(ctx: MemoryContext, namespace: string): string {
  requireScopes(ctx.identity, [['memory:write']]);
  const ns = entryNamespace(namespace);
  assertMayWrite(ctx.identity, ns);
  return ns;
}

export function workingMemoryResolvers(store: WorkingMemoryStore, limits: WorkingMemoryLimits, clock: () => number = Date.now): Resolvers {
  return {
    Query: {
      workingMemory: async (_parent, { namespace, key }, ctx) => {
        requireScopes(ctx.identity, [['memory:read']]);
        const ns = entryNamespace(namespace);
        // Unreadable is answered as absent, as memories are: no telling what others keep.
        if (!isReadable(readablePrefixes(ctx.identity, undefined), ns)) return null;
        return store.get(ctx.tenantId, ns, entryKey(key));
      },
    },
    Mutation: {
      setWorkingMemory: (_parent, { input }, ctx) => {
        const ns = writable(ctx, input.namespace);
        return store.set(
          ctx.tenantId,
          ns,
          entryKey(input.key),
          encodeValue(input.value, limits),
          expiryOf(input.ttlSeconds, clock(), limits),
          expectedVersion(input.ifVersion),
        );
      },
      incrementWorkingMemory: (_parent, { namespace, key, by, ttlSeconds }, ctx) => {
        const ns = writable(ctx, namespace);
        return store.increment(ctx.tenantId, ns, entryKey(key), incrementBy(by), expiryOf(ttlSeconds, clock(), limits));
      },
      deleteWorkingMemory: (_parent, { namespace, key, ifVersion }, ctx) => {
        const ns = writable(ctx, namespace);
        return store.delete(ctx.tenantId, ns, entryKey(key), expectedVersion(ifVersion));
      },
    },
    WorkingMemoryEntry: {
      value: (entry: WorkingMemoryEntryRow) => JSON.parse(entry.valueJson) as unknown,
    },
  };
}
