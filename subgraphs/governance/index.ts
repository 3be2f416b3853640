// The governance subgraph: API keys for partner systems (and, later, other access settings of
// a tenant). The gateway verifies presented keys through its @inaccessible verifyApiKey.
import { createIdempotency } from '../../runtime/idempotency.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createGovernanceContext, type GovernanceContext } from './context.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { ApiKeyStore, type GovernanceDB } from './store.ts';

export const governance: SubgraphDefinition<GovernanceDB, GovernanceContext> = {
  name: 'governance',
  defaultPort: 4003,
  migrations,
  outbox: true,
  create({ database, events, logger, config, env }) {
    const { idempotency, pruner } = createIdempotency({ db: database.db, env, nodeEnv: config.NODE_ENV, logger });
    const store = new ApiKeyStore(database, events, logger, Date.now, idempotency);
    return {
      resolvers,
      createContext: (base) => createGovernanceContext(base, store),
      start: () => pruner.start(),
      stop: () => pruner.stop(),
    };
  },
};
