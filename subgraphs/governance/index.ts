// The governance subgraph: API keys for partner systems (and, later, other access settings of
// a tenant). The gateway verifies presented keys through its @inaccessible verifyApiKey.
import { developmentIdentity, loadIdentityConfig } from '../../runtime/identity.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createGovernanceContext, type GovernanceContext } from './context.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { ApiKeyStore, type GovernanceDB } from './store.ts';

export const governance: SubgraphDefinition<GovernanceDB, GovernanceContext> = {
  name: 'governance',
  defaultPort: 4003,
  migrations,
  create({ database, bus, logger, env }) {
    // Also refuses, at start, the development switch or secret in production.
    const identity = loadIdentityConfig(env);
    const store = new ApiKeyStore(database, bus, logger);
    const fallback = identity.allowUnsignedDev ? (tenantId: string) => developmentIdentity('governance', tenantId) : () => null;
    return {
      resolvers,
      createContext: (base) => createGovernanceContext(base, store, fallback),
    };
  },
};
