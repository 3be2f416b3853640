import type { RequestContext } from '../../runtime/context.ts';
import type { Embedder } from './embeddings.ts';
import type { MemoryStore } from './store.ts';

/** Per request: the store and the embedder; who is calling (base.identity) and its tenant come from the runtime. */
export interface MemoryContext extends RequestContext {
  store: MemoryStore;
  /** Null without EMBEDDINGS_URL: vectors come from clients only. */
  embedder: Embedder | null;
}

export function createMemoryContext(base: RequestContext, store: MemoryStore, embedder: Embedder | null): MemoryContext {
  return { ...base, store, embedder };
}
