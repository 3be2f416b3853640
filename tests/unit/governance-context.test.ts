// Which identity and tenant a governance request acts with.
import { describe, expect, it } from 'vitest';
import { developmentIdentity, type RequestIdentity } from '../../runtime/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createGovernanceContext } from '../../subgraphs/governance/context.ts';
import type { ApiKeyStore } from '../../subgraphs/governance/store.ts';

// The context only carries the store along; no method of it is called here.
const store = {} as ApiKeyStore;
const base = { tenantId: 'default', requestId: 'r1', logger: createLogger('test', 'silent') };
const verified: RequestIdentity = { kind: 'user', subject: 'alice', tenantId: 'acme', scopes: ['admin'], requestId: 'r1', audience: 'governance', expiresAt: new Date(), signed: true };

describe('governance context', () => {
  it('acts as the verified identity, in its tenant, whatever the fallback', () => {
    const ctx = createGovernanceContext({ ...base, identity: verified }, store, (t) => developmentIdentity('governance', t));
    expect(ctx.identity).toBe(verified);
    expect(ctx.tenantId).toBe('acme');
  });

  it('without one, uses the fallback: the development identity, or none', () => {
    expect(createGovernanceContext(base, store, (t) => developmentIdentity('governance', t)).identity).toMatchObject({ subject: 'development', tenantId: 'default', signed: false });
    const none = createGovernanceContext(base, store, () => null);
    expect(none.identity).toBeNull();
    expect(none.tenantId).toBe('default');
  });
});
