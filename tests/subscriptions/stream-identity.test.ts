// Who a shared subscription stream acts as (gateway/subscriptions/stream-identity.ts): its key part
// separates every difference in what a subscriber may see, including the agent a credential acts
// as, and its principal carries no subscriber's subject or expiry.
import { describe, expect, it } from 'vitest';
import { ANONYMOUS, type AuthenticatedPrincipal } from '../../gateway/auth/principal.ts';
import { identityClaims } from '../../gateway/auth/principal.ts';
import { authorizationKey, STREAM_SUBJECT, streamContext, streamPrincipal } from '../../gateway/subscriptions/stream-identity.ts';
import { createLogger } from '../../runtime/logger.ts';

const base: AuthenticatedPrincipal = {
  kind: 'user',
  subject: 'ann',
  tenantId: 'acme',
  scopes: ['tasks:read', 'agents:read'],
  expiresAt: new Date(Date.now() + 5_000),
};
const key = (p: Parameters<typeof authorizationKey>[0]) => JSON.stringify(authorizationKey(p));

describe('authorizationKey', () => {
  it('differs for another tenant, kind, scope set or agent', () => {
    const variants: AuthenticatedPrincipal[] = [
      { ...base, tenantId: 'globex' },
      { ...base, kind: 'apiKey' },
      { ...base, scopes: ['tasks:read'] },
      { ...base, agentId: 'agt_1' },
      { ...base, agentId: 'agt_2' },
    ];
    const keys = new Set([key(base), ...variants.map(key), key(ANONYMOUS)]);
    expect(keys.size).toBe(variants.length + 2);
  });

  it('is the same for another subject, another expiry, or the same scopes in another order', () => {
    expect(key({ ...base, subject: 'bob', expiresAt: null })).toBe(key(base));
    expect(key({ ...base, scopes: ['agents:read', 'tasks:read', 'agents:read'] })).toBe(key(base));
  });
});

describe('streamPrincipal and streamContext', () => {
  it('keep the tenant, scopes and agent, not the subject, the expiry or the API key', () => {
    const principal = streamPrincipal({ ...base, kind: 'apiKey', apiKeyId: 'key_1', agentId: 'agt_1' });
    expect(principal).toEqual({
      kind: 'apiKey',
      subject: STREAM_SUBJECT,
      tenantId: 'acme',
      scopes: ['agents:read', 'tasks:read'],
      expiresAt: null,
      agentId: 'agt_1',
    });
    expect(identityClaims(principal)).toEqual({
      kind: 'apiKey',
      subject: STREAM_SUBJECT,
      tenantId: 'acme',
      scopes: ['agents:read', 'tasks:read'],
      agentId: 'agt_1',
    });
    expect(streamPrincipal(ANONYMOUS)).toBe(ANONYMOUS);
  });

  it('gives the stream its own request id and only the headers it was keyed with', () => {
    const context = streamContext(base, [['accept-language', 'de']], createLogger('test', 'silent'));
    expect(context.requestId).toMatch(/^stream-/);
    expect([...context.headers]).toEqual([['accept-language', 'de']]);
    expect(context.principal).toMatchObject({ subject: STREAM_SUBJECT, expiresAt: null });
  });
});

describe('streams of a per-subject subgraph (SUBSCRIPTION_PER_SUBJECT_SUBGRAPHS)', () => {
  it('keep the subscriber subject, still without its expiry', () => {
    const principal = streamPrincipal(base, true);
    expect(principal).toMatchObject({ kind: 'user', subject: 'ann', tenantId: 'acme', expiresAt: null });
    const context = streamContext(base, [], createLogger('test', 'silent'), true);
    expect(identityClaims(context.principal)).toMatchObject({ subject: 'ann', tenantId: 'acme' });
    expect(streamPrincipal(base).subject).toBe(STREAM_SUBJECT);
  });
});
