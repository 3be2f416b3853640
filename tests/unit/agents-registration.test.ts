// Registering with a credential never leaves an agent without the key it was promised, nor a key
// for an agent that was not stored: the resolver with a store and a governance client that fail
// on purpose (the real ones are in tests/subgraph/agents-credentials-http.test.ts).
import { GraphQLError, type GraphQLResolveInfo } from 'graphql';
import { describe, expect, it, vi } from 'vitest';
import { developmentIdentity } from '../../runtime/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import type { AgentsContext } from '../../subgraphs/agents/context.ts';
import type { AgentCredentials, IssuedCredential } from '../../subgraphs/agents/credentials.ts';
import { resolvers } from '../../subgraphs/agents/resolvers.ts';
import type { AgentRow, AgentStore } from '../../subgraphs/agents/store.ts';

const issued: IssuedCredential = { keyId: 'key-1', prefix: 'ap_0123456789abcdef', secret: 'ap_0123456789abcdef_secret', scopes: ['agents:read'] };

function context(store: Pick<AgentStore, 'register'> & Partial<Pick<AgentStore, 'registered'>>, credentials: AgentCredentials): AgentsContext {
  const logger = createLogger('test', 'silent');
  // Only what registration touches; the rest of the context is never read here.
  return {
    tenantId: 'default',
    requestId: 'req',
    logger,
    identity: developmentIdentity('agents'),
    // No Idempotency-Key unless a test says otherwise: nothing was registered with it before.
    store: { registered: async () => false, ...store } as AgentStore,
    credentials,
    agentLoader: { clear: () => ({ prime: () => undefined }) },
    now: () => new Date(),
  } as unknown as AgentsContext;
}

async function registerAgent(ctx: AgentsContext, issueCredential: boolean): Promise<AgentRow> {
  const resolve = resolvers.Mutation?.registerAgent as (parent: unknown, args: unknown, ctx: AgentsContext, info: GraphQLResolveInfo) => Promise<AgentRow>;
  return resolve({}, { input: { name: 'Scout' }, issueCredential }, ctx, {} as GraphQLResolveInfo);
}

describe('registration with a credential', () => {
  it('stores the agent under the id its credential was minted for, and answers the credential', async () => {
    const issue = vi.fn(async (_caller: unknown, _agentId: string, _name: string) => issued);
    const register = vi.fn(async (_tenant: string, _draft: unknown, id?: string) => ({ id }) as AgentRow);
    const row = await registerAgent(context({ register }, { issue, revoke: vi.fn() }), true);
    const mintedFor = issue.mock.calls[0]?.[1];
    expect(register.mock.calls[0]?.[2]).toBe(mintedFor);
    expect(row).toMatchObject({ id: mintedFor, credential: issued });
  });

  it('stores nothing when governance refuses, and says the agent was not registered', async () => {
    const register = vi.fn();
    const refused = new GraphQLError('The governance subgraph is unavailable; try again', {
      extensions: { code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'governance', http: { status: 503 } },
    });
    const err = await registerAgent(context({ register }, { issue: vi.fn(async () => Promise.reject(refused)), revoke: vi.fn() }), true).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GraphQLError);
    expect((err as GraphQLError).message).toMatch(/^The agent was not registered: its credential could not be issued/);
    expect((err as GraphQLError).extensions).toEqual({ code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'governance', registered: false });
    expect(register).not.toHaveBeenCalled();
  });

  it('revokes the fresh credential when the agent cannot be stored, and reports the store’s error', async () => {
    const revoke = vi.fn(async () => undefined);
    const broken = new Error('disk full');
    const err = await registerAgent(context({ register: vi.fn(async () => Promise.reject(broken)) }, { issue: vi.fn(async () => issued), revoke }), true).catch(
      (e: unknown) => e,
    );
    expect(err).toBe(broken);
    expect(revoke).toHaveBeenCalledWith(expect.objectContaining({ tenantId: 'default' }), 'key-1');
  });

  it('does not mint a second credential for a keyed repeat of a committed registration', async () => {
    const issue = vi.fn();
    const register = vi.fn(async () => ({ id: 'first' }) as AgentRow);
    const row = await registerAgent(context({ register, registered: async () => true }, { issue, revoke: vi.fn() }), true);
    expect(issue).not.toHaveBeenCalled();
    expect(row).toMatchObject({ id: 'first' });
    expect(row.credential).toBeUndefined();
  });

  it('does not ask governance without issueCredential', async () => {
    const issue = vi.fn();
    const register = vi.fn(async () => ({ id: 'x' }) as AgentRow);
    const row = await registerAgent(context({ register }, { issue, revoke: vi.fn() }), false);
    expect(issue).not.toHaveBeenCalled();
    expect(row.credential).toBeUndefined();
  });
});
