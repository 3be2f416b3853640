import type { RequestIdentity } from './identity.ts';
import type { Logger } from './logger.ts';

/**
 * The tenant of development data and of `npm run token`'s default token. Every request acts in
 * the tenant of the identity the gateway signed for it, never in this one by default.
 */
export const DEFAULT_TENANT = 'default';

/**
 * The tenant of an identity that has none (anonymous callers, the gateway's own service calls):
 * no real tenant id can look like this (TENANT_ID_PATTERN starts with a letter or digit), so
 * every tenant-scoped query finds nothing.
 */
export const NO_TENANT = '-no-tenant-';

/** What every resolver context carries, whatever the subgraph. */
export interface RequestContext {
  /** The identity's tenant, or NO_TENANT. */
  tenantId: string;
  requestId: string;
  logger: Logger;
  /** Who is calling, as the gateway signed it (runtime/identity.ts). */
  identity: RequestIdentity;
  /** The request's Idempotency-Key header, when sent (runtime/idempotency.ts). */
  idempotencyKey?: string | undefined;
}

/** The base context of a request acting as `identity`: its tenant, or one no tenant has. */
export function baseContext(identity: RequestIdentity, requestId: string, logger: Logger, idempotencyKey?: string): RequestContext {
  return { tenantId: identity.tenantId ?? NO_TENANT, requestId, logger: logger.child({ requestId }), identity, idempotencyKey };
}
