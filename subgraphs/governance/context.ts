import type { RequestContext } from '../../runtime/context.ts';
import type { ApiKeyStore } from './store.ts';

/** Per request: the store; who is calling (base.identity) and its tenant come from the runtime. */
export interface GovernanceContext extends RequestContext {
  store: ApiKeyStore;
}

export function createGovernanceContext(base: RequestContext, store: ApiKeyStore): GovernanceContext {
  return { ...base, store };
}
