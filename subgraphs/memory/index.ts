// The memory subgraph: what agents remember (episodes, facts, procedures) in namespaces, found
// again by words (full-text), by meaning (vectors) or both (reciprocal rank fusion).
import { env, loadConfig } from '../../runtime/config.ts';
import type { Database } from '../../runtime/db.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import { Outbox } from '../../runtime/outbox.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createMemoryContext, type MemoryContext } from './context.ts';
import { createEmbedder } from './embeddings.ts';
import { withParts } from './graph/resolvers.ts';
import { type GraphDB, GraphStore } from './graph/store.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { MemoryStore, type MemoryDB } from './store.ts';
import { VectorIndex } from './store/vector-index.ts';
import { workingMemorySpec } from './working/domain.ts';
import { RedisWorkingMemory } from './working/redis-store.ts';
import { workingMemoryResolvers } from './working/resolvers.ts';
import { SqlWorkingMemory, type WorkingMemoryDB } from './working/store.ts';

export const memorySpec = {
  MEMORY_SWEEP_INTERVAL_MS: env.int('how often expired memories are deleted, in milliseconds', 60_000, 10),
  MEMORY_VECTOR_INDEX: env.oneOf(
    'semantic search engine: an in-process HNSW index (usearch) per replica, or an exact scan',
    ['hnsw', 'exact'] as const,
    'hnsw',
  ),
  MEMORY_HNSW_EF_SEARCH: env.int('HNSW candidate list while searching (higher: better recall, slower)', 64, 1),
  ...workingMemorySpec,
};

export const memory: SubgraphDefinition<MemoryDB, MemoryContext> = {
  name: 'memory',
  defaultPort: 4004,
  migrations,
  outbox: true,
  create({ database, events, logger, config, env: source }) {
    const { MEMORY_SWEEP_INTERVAL_MS, MEMORY_VECTOR_INDEX, MEMORY_HNSW_EF_SEARCH, MEMORY_WORKING_MAX_VALUE_BYTES, MEMORY_WORKING_MAX_TTL_SECONDS } = loadConfig(
      memorySpec,
      source,
    );
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: config.NODE_ENV, logger });
    // The index follows the outbox's events (outbox: true makes `events` the Outbox).
    const vectorIndex =
      MEMORY_VECTOR_INDEX === 'hnsw' && events instanceof Outbox
        ? new VectorIndex(database.db, events, logger, { connectivity: 16, expansionAdd: 64, expansionSearch: MEMORY_HNSW_EF_SEARCH })
        : null;
    const store = new MemoryStore(database, events, logger, Date.now, idempotency, vectorIndex);
    const embedder = createEmbedder(source, logger);
    const graph = new GraphStore(database as unknown as Database<GraphDB>, events, logger, Date.now, idempotency);
    // Replicas share working memory through Redis when there is one; else it is a table here.
    const working = config.REDIS_URL
      ? new RedisWorkingMemory(config.REDIS_URL, config.EVENT_CHANNEL_PREFIX)
      : new SqlWorkingMemory(database as unknown as Database<WorkingMemoryDB>);
    const workingLimits = { maxValueBytes: MEMORY_WORKING_MAX_VALUE_BYTES, maxTtlSeconds: MEMORY_WORKING_MAX_TTL_SECONDS };
    // Expired memories are already invisible to reads; the sweeper frees their rows (and tells
    // subscribers they are gone).
    const sweeper = createPeriodicJob({
      name: 'expired memory sweep',
      intervalMs: MEMORY_SWEEP_INTERVAL_MS,
      run: async () => (await store.sweepExpired()) + (await working.sweepExpired()),
      logger,
    });
    return {
      resolvers: withParts(resolvers, graph, workingMemoryResolvers(working, workingLimits)),
      createContext: (base) => createMemoryContext(base, store, embedder),
      start: () => {
        pruner.start();
        sweeper.start();
        void vectorIndex?.warm().catch((err: unknown) => logger.error({ err }, 'vector index warm-up failed; searches scan exactly'));
      },
      stop: async () => {
        vectorIndex?.close();
        await sweeper.stop();
        await pruner.stop();
        await working.close();
      },
    };
  },
};
