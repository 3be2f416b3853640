// The memory subgraph: what agents remember (episodes, facts, procedures) in namespaces, found
// again by words (full-text), by meaning (vectors) or both (reciprocal rank fusion).
import { env, loadConfig } from '../../runtime/config.ts';
import type { Database } from '../../runtime/db.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createMemoryContext, type MemoryContext } from './context.ts';
import { createEmbedder } from './embeddings.ts';
import { withGraph } from './graph/resolvers.ts';
import { type GraphDB, GraphStore } from './graph/store.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { MemoryStore, type MemoryDB } from './store.ts';

export const memorySpec = {
  MEMORY_SWEEP_INTERVAL_MS: env.int('how often expired memories are deleted, in milliseconds', 60_000, 10),
};

export const memory: SubgraphDefinition<MemoryDB, MemoryContext> = {
  name: 'memory',
  defaultPort: 4004,
  migrations,
  outbox: true,
  create({ database, events, logger, config, env: source }) {
    const { MEMORY_SWEEP_INTERVAL_MS } = loadConfig(memorySpec, source);
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: config.NODE_ENV, logger });
    const store = new MemoryStore(database, events, logger, Date.now, idempotency);
    const embedder = createEmbedder(source, logger);
    const graph = new GraphStore(database as unknown as Database<GraphDB>, events, logger, Date.now, idempotency);
    // Expired memories are already invisible to reads; the sweeper frees their rows (and tells
    // subscribers they are gone).
    const sweeper = createPeriodicJob({ name: 'expired memory sweep', intervalMs: MEMORY_SWEEP_INTERVAL_MS, run: () => store.sweepExpired(), logger });
    return {
      resolvers: withGraph(resolvers, graph),
      createContext: (base) => createMemoryContext(base, store, embedder),
      start: () => {
        pruner.start();
        sweeper.start();
      },
      stop: async () => {
        await sweeper.stop();
        await pruner.stop();
      },
    };
  },
};
