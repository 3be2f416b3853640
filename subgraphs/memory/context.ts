import type { RequestContext } from '../../runtime/context.ts';
import type { MemoryStore } from './store.ts';

/** Per request: the store; who is calling (base.identity) and its tenant come from the runtime. */
export interface MemoryContext extends RequestContext {
  store: MemoryStore;
}

export function createMemoryContext(base: RequestContext, store: MemoryStore): MemoryContext {
  return { ...base, store };
}
