import type { Logger } from './logger.ts';

/**
 * Rows belong to a tenant (organization) from day one. Until authentication lands every caller
 * acts in this tenant; the store functions already take the tenant id explicitly.
 */
export const DEFAULT_TENANT = 'default';

/** What every resolver context carries, whatever the subgraph. */
export interface RequestContext {
  tenantId: string;
  requestId: string;
  logger: Logger;
}
