// Agent credentials seen from the agents subgraph: registering with issueCredential mints the
// agent's key with the real governance subgraph (both in-process, spoken to over HTTP with
// gateway identity tokens), and a caller acting as an agent may change only its own record.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityClaims } from '../../runtime/identity.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { governance } from '../../subgraphs/governance/index.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';

interface Response<D> {
  status: number;
  data?: D | null;
  errors?: { message: string; extensions?: Record<string, unknown> & { code?: string } }[];
}

const CREDENTIAL = 'credential { keyId prefix secret scopes }';
const REGISTER = `mutation($input: RegisterAgentInput!, $issue: Boolean) { registerAgent(input: $input, issueCredential: $issue) { id name ${CREDENTIAL} } }`;
const REGISTER_CARD = `mutation($card: JSON!, $issue: Boolean) { registerAgentFromCard(card: $card, issueCredential: $issue) { id name ${CREDENTIAL} } }`;
const VERIFY = 'query($key: String!) { verifyApiKey(key: $key) { keyId tenantId agentId scopes } }';

type Registered = { id: string; name: string; credential: { keyId: string; prefix: string; secret: string; scopes: string[] } | null };

describe(`agent credentials through the agents subgraph (${DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'agents-credentials-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  let governanceSubgraph: RunningSubgraph;
  let agentsSubgraph: RunningSubgraph;

  beforeAll(async () => {
    const common = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent', DATABASE_SCHEMA_PREFIX: schemaPrefix, ...TEST_SECURITY_ENV };
    governanceSubgraph = await startSubgraph(governance, { ...common, GOVERNANCE_PORT: '0' });
    agentsSubgraph = await startSubgraph(agents, { ...common, AGENTS_PORT: '0', SUBGRAPH_GOVERNANCE_URL: governanceSubgraph.url });
  });
  afterAll(async () => {
    await agentsSubgraph?.stop();
    await governanceSubgraph?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) {
      await dropSchema(`${schemaPrefix}agents`);
      await dropSchema(`${schemaPrefix}governance`);
    }
  });

  async function call<D>(
    url: string,
    audience: string,
    query: string,
    variables: Record<string, unknown> = {},
    claims: Partial<IdentityClaims> = {},
  ): Promise<Response<D>> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await identityHeaders(audience, claims)) },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    expect(text).not.toMatch(/stacktrace|\\n\s*at\s|\.ts:\d+/);
    return { status: res.status, ...(JSON.parse(text) as Omit<Response<D>, 'status'>) };
  }
  const agentsGql = <D>(query: string, variables?: Record<string, unknown>, claims?: Partial<IdentityClaims>) =>
    call<D>(agentsSubgraph.url, 'agents', query, variables, claims);
  const verify = async (key: string) =>
    (
      await call<{ verifyApiKey: Record<string, unknown> | null }>(
        governanceSubgraph.url,
        'governance',
        VERIFY,
        { key },
        { kind: 'service', subject: 'gateway', tenantId: null, scopes: [] },
      )
    ).data!.verifyApiKey;
  const count = async () => (await agentsGql<{ agents: { totalCount: number } }>('{ agents { totalCount } }')).data!.agents.totalCount;

  async function register(name: string, issue?: boolean): Promise<Registered> {
    const res = await agentsGql<{ registerAgent: Registered }>(REGISTER, { input: { name }, ...(issue === undefined ? {} : { issue }) });
    expect(res.errors).toBeUndefined();
    return res.data!.registerAgent;
  }

  it('registers without a credential unless asked: credential is null, nothing minted', async () => {
    for (const issue of [undefined, false]) {
      const agent = await register('Plain', issue);
      expect(agent.credential).toBeNull();
      const keys = await call<{ apiKeys: { totalCount: number } }>(
        governanceSubgraph.url,
        'governance',
        'query($a: ID) { apiKeys(agentId: $a) { totalCount } }',
        { a: agent.id },
      );
      expect(keys.data!.apiKeys.totalCount).toBe(0);
    }
  });

  it('registers with a credential: shown once, bound to the agent, with the agent scopes', async () => {
    const agent = await register('Scout', true);
    expect(agent.credential).toMatchObject({
      scopes: ['agents:read', 'agents:write', 'collaboration:read', 'collaboration:write', 'memory:read', 'memory:write', 'tasks:read', 'tasks:write'],
    });
    expect(agent.credential!.secret.startsWith(`${agent.credential!.prefix}_`)).toBe(true);
    expect(await verify(agent.credential!.secret)).toEqual({
      keyId: agent.credential!.keyId,
      tenantId: 'default',
      agentId: agent.id,
      scopes: agent.credential!.scopes,
    });
    // Never shown again.
    const again = await agentsGql<{ agent: { credential: unknown } }>(`query($id: ID!) { agent(id: $id) { credential { secret } } }`, { id: agent.id });
    expect(again.data!.agent.credential).toBeNull();
    const listed = await call<{ apiKeys: { nodes: { name: string; agentId: string; createdBy: string }[] } }>(
      governanceSubgraph.url,
      'governance',
      'query($a: ID) { apiKeys(agentId: $a) { nodes { name agentId createdBy } } }',
      { a: agent.id },
    );
    expect(listed.data!.apiKeys.nodes).toEqual([{ name: 'Agent credential: Scout', agentId: agent.id, createdBy: 'test-admin' }]);
  });

  it('registers from an A2A card with a credential', async () => {
    const card = {
      name: 'Card Agent',
      description: 'd',
      version: '1.0.0',
      url: 'https://agents.example.com/card',
      skills: [{ id: 's', name: 'S', description: 'x', tags: ['t'] }],
    };
    const res = await agentsGql<{ registerAgentFromCard: Registered }>(REGISTER_CARD, { card, issue: true });
    expect(res.errors).toBeUndefined();
    const agent = res.data!.registerAgentFromCard;
    expect((await verify(agent.credential!.secret))?.agentId).toBe(agent.id);
    const plain = await agentsGql<{ registerAgentFromCard: Registered }>(REGISTER_CARD, { card });
    expect(plain.data!.registerAgentFromCard.credential).toBeNull();
  });

  it('an agent caller acts on its own record only: AGENT_MISMATCH on another agent or a registration, FORBIDDEN to activate itself', async () => {
    const me = await register('Me', true);
    const other = await register('Other');
    await agentsGql('mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: me.id });
    await agentsGql('mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: other.id });
    const asMe: Partial<IdentityClaims> = { kind: 'apiKey', subject: `apikey:${me.credential!.keyId}`, scopes: me.credential!.scopes, agentId: me.id };

    const heartbeat = await agentsGql<{ recordHeartbeat: { lastHeartbeatAt: string | null } }>(
      'mutation($id: ID!) { recordHeartbeat(id: $id) { lastHeartbeatAt } }',
      { id: me.id },
      asMe,
    );
    expect(heartbeat.errors).toBeUndefined();
    expect(heartbeat.data!.recordHeartbeat.lastHeartbeatAt).not.toBeNull();
    const update = await agentsGql<{ updateAgent: { description: string } }>(
      'mutation($id: ID!) { updateAgent(id: $id, input: { description: "mine" }) { description } }',
      { id: me.id },
      asMe,
    );
    expect(update.data!.updateAgent.description).toBe('mine');
    for (const action of ['pauseAgent', 'resumeAgent']) {
      const res = await agentsGql(`mutation($id: ID!) { ${action}(id: $id) { status } }`, { id: me.id }, asMe);
      expect(res.errors).toBeUndefined();
    }

    const before = await agentsGql<{ agent: { version: number; lastHeartbeatAt: string | null; status: string } }>(
      'query($id: ID!) { agent(id: $id) { version lastHeartbeatAt status } }',
      { id: other.id },
    );
    for (const mutation of ['recordHeartbeat(id: $id)', 'updateAgent(id: $id, input: { name: "mine now" })', 'pauseAgent(id: $id)', 'retireAgent(id: $id)']) {
      const res = await agentsGql(`mutation($id: ID!) { ${mutation} { id } }`, { id: other.id }, asMe);
      expect(res.errors?.map((e) => e.extensions?.code)).toEqual(['AGENT_MISMATCH']);
      expect(res.errors?.[0]?.extensions?.agentId).toBe(me.id);
    }
    const after = await agentsGql<{ agent: unknown }>('query($id: ID!) { agent(id: $id) { version lastHeartbeatAt status } }', { id: other.id });
    expect(after.data!.agent).toEqual(before.data!.agent);

    const agentsBefore = await count();
    const registerOther = await agentsGql(REGISTER, { input: { name: 'Spawn' }, issue: true }, asMe);
    expect(registerOther.errors?.map((e) => e.extensions?.code)).toEqual(['AGENT_MISMATCH']);
    const card = { name: 'Spawn', description: 'd', version: '1', url: 'https://x.example.com', skills: [{ id: 's', name: 'S', description: 'x', tags: [] }] };
    expect((await agentsGql(REGISTER_CARD, { card }, asMe)).errors?.map((e) => e.extensions?.code)).toEqual(['AGENT_MISMATCH']);
    expect(await count()).toBe(agentsBefore);

    await agentsGql('mutation($id: ID!) { pauseAgent(id: $id) { id } }', { id: me.id }, asMe);
    const third = await register('Third');
    const activateSelf = await agentsGql('mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: third.id }, { ...asMe, agentId: third.id });
    expect(activateSelf.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    // Reading the registry is not acting on it: an agent sees its peers.
    const read = await agentsGql<{ agent: { name: string } }>('query($id: ID!) { agent(id: $id) { name } }', { id: other.id }, asMe);
    expect(read.data!.agent.name).toBe('Other');
    // Retiring itself is allowed (and final).
    const retire = await agentsGql<{ retireAgent: { status: string } }>('mutation($id: ID!) { retireAgent(id: $id) { status } }', { id: me.id }, asMe);
    expect(retire.data!.retireAgent.status).toBe('RETIRED');
  });

  it('governance unreachable: the agent is not registered, and the error says so', async () => {
    const before = await count();
    await governanceSubgraph.stop();
    const res = await agentsGql(REGISTER, { input: { name: 'Orphan?' }, issue: true });
    expect(res.errors).toHaveLength(1);
    expect(res.errors![0]!.extensions).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'governance', registered: false });
    expect(res.errors![0]!.message).toMatch(/^The agent was not registered/);
    expect(await count()).toBe(before);
    // Without a credential, registration does not need governance.
    expect((await register('Still fine')).credential).toBeNull();
    expect(await count()).toBe(before + 1);
  });
});
