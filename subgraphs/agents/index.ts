// The agents subgraph: the registry of AI agents, their A2A cards, lifecycle and liveness.
import { createIdempotency } from '../../runtime/idempotency.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createAgentsContext, type AgentsContext } from './context.ts';
import { createAgentCredentials } from './credentials.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { AgentStore, type AgentsDB } from './store.ts';
import { registerAgentMetrics } from './metrics.ts';

export const agents: SubgraphDefinition<AgentsDB, AgentsContext> = {
  name: 'agents',
  defaultPort: 4001,
  migrations,
  outbox: true,
  create({ database, events, logger, identity, config, env }) {
    const { idempotency, pruner } = createIdempotency({ db: database.db, env, nodeEnv: config.NODE_ENV, logger });
    const store = new AgentStore(database, events, logger, Date.now, idempotency);
    const credentials = createAgentCredentials({ env, identity, logger });
    return {
      resolvers,
      createContext: (base) => createAgentsContext(base, store, credentials),
      registerMetrics: (registry) => registerAgentMetrics(registry, database, Date.now),
      start: () => pruner.start(),
      stop: () => pruner.stop(),
    };
  },
};
