// Which identity and tenant a governance request acts with.
import { describe, expect, it } from 'vitest';
import { baseContext, NO_TENANT } from '../../runtime/context.ts';
import type { RequestIdentity } from '../../runtime/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createGovernanceContext } from '../../subgraphs/governance/context.ts';
import type { ApiKeyStore } from '../../subgraphs/governance/store.ts';

// The context only carries the store along; no method of it is called here.
const store = {} as ApiKeyStore;
const logger = createLogger('test', 'silent');
const verified: RequestIdentity = {
  kind: 'user',
  subject: 'alice',
  tenantId: 'acme',
  scopes: ['admin'],
  requestId: 'r1',
  audience: 'governance',
  expiresAt: new Date(),
  signed: true,
};

describe('governance context', () => {
  it('acts as the verified identity, in its tenant', () => {
    const ctx = createGovernanceContext(baseContext(verified, 'r1', logger), store);
    expect(ctx.identity).toBe(verified);
    expect(ctx.tenantId).toBe('acme');
  });

  it('an identity without a tenant acts in a tenant nobody has', () => {
    const service: RequestIdentity = { ...verified, kind: 'service', subject: 'gateway', tenantId: null, scopes: [] };
    const ctx = createGovernanceContext(baseContext(service, 'r2', logger), store);
    expect(ctx.tenantId).toBe(NO_TENANT);
    expect(ctx.tenantId).not.toMatch(/^[A-Za-z0-9][\w.:-]{0,127}$/);
  });
});
