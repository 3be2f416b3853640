import DataLoader from 'dataloader';
import type { RequestContext } from '../../runtime/context.ts';
import type { AgentCredentials } from './credentials.ts';
import type { AgentRow, AgentStore } from './store.ts';

/** Per request: the store, the clock health is computed against, and a batching agent loader. */
export interface AgentsContext extends RequestContext {
  store: AgentStore;
  /** Mints agent credentials with the governance subgraph. */
  credentials: AgentCredentials;
  /** Agents of this request's tenant by (lower-case) id; null for an unknown id. */
  agentLoader: DataLoader<string, AgentRow | null>;
  now(): Date;
}

// Bounds the IN list of one statement; a federated _entities request rarely comes near it.
const MAX_BATCH = 500;

export function createAgentsContext(base: RequestContext, store: AgentStore, credentials: AgentCredentials): AgentsContext {
  const tenantId = base.tenantId;
  const agentLoader = new DataLoader<string, AgentRow | null>(
    async (ids) => {
      const byId = new Map((await store.getMany(tenantId, ids)).map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    },
    { maxBatchSize: MAX_BATCH },
  );
  return { ...base, store, credentials, agentLoader, now: () => store.now() };
}
