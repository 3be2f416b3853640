import type { RequestContext } from '../../runtime/context.ts';
import type { RequestIdentity } from '../../runtime/identity.ts';
import type { ApiKeyStore } from './store.ts';

/** Per request: the store, and who is calling as the gateway vouched for it. */
export interface GovernanceContext extends RequestContext {
  store: ApiKeyStore;
  /** null: no verified identity, so every operation answers UNAUTHENTICATED. */
  identity: RequestIdentity | null;
}

/**
 * The identity comes from the runtime once it verifies the gateway's token (base.identity);
 * until then, and for requests without one, `fallback` decides (the development identity under
 * ALLOW_UNSIGNED_DEV, else none). The tenant is the identity's, so a caller acts only in its own.
 */
export function createGovernanceContext(
  base: RequestContext & { identity?: RequestIdentity | null },
  store: ApiKeyStore,
  fallback: (tenantId: string) => RequestIdentity | null,
): GovernanceContext {
  const identity = base.identity ?? fallback(base.tenantId);
  return { ...base, tenantId: identity?.tenantId ?? base.tenantId, store, identity };
}
