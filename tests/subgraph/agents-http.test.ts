// The agents subgraph as a client sees it: the real server in-process, spoken to over HTTP.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';

interface GraphQLErrorBody {
  message: string;
  path?: (string | number)[];
  extensions?: Record<string, unknown> & { code?: string };
}
interface Response<D> {
  status: number;
  data?: D | null;
  errors?: GraphQLErrorBody[];
}

const AGENT_FIELDS = 'id name status health version endpointUrl lastHeartbeatAt';

describe(`agents subgraph over HTTP (${DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  let running: RunningSubgraph;
  const dataDir = mkdtempSync(join(tmpdir(), 'agents-http-'));
  // A private PostgreSQL schema, so parallel test files never share tables.
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';

  beforeAll(async () => {
    running = await startSubgraph(agents, {
      ...process.env,
      AGENTS_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      // No periodic outbox relay during the statement counts (the one at start is awaited by settleEvents).
      OUTBOX_RELAY_INTERVAL_MS: '3600000',
      ...TEST_SECURITY_ENV,
    });
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${schemaPrefix}agents`);
  });

  /** Posts a raw body; every response, whatever it is, must be free of stack traces. */
  async function post(body: string, contentType = 'application/json'): Promise<{ status: number; json: Record<string, unknown> }> {
    // Signed as the gateway signs an admin of the default tenant.
    const res = await fetch(running.url, { method: 'POST', headers: { 'content-type': contentType, ...(await identityHeaders('agents')) }, body });
    const text = await res.text();
    expect(text).not.toMatch(/stacktrace|\\n\s*at\s|\.ts:\d+/);
    return { status: res.status, json: JSON.parse(text) as Record<string, unknown> };
  }

  async function gql<D = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<Response<D>> {
    const { status, json } = await post(JSON.stringify({ query, variables }));
    return { status, ...(json as Omit<Response<D>, 'status'>) };
  }

  /** The one error of a failed operation. */
  function onlyError<D>(res: Response<D>): GraphQLErrorBody {
    expect(res.errors).toHaveLength(1);
    return res.errors![0]!;
  }

  async function agentCount(): Promise<number> {
    const res = await gql<{ agents: { totalCount: number } }>('{ agents { totalCount } }');
    return res.data!.agents.totalCount;
  }

  async function register(name = 'Agent'): Promise<{ id: string; version: number }> {
    const res = await gql<{ registerAgent: { id: string; version: number } }>(
      'mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id version } }',
      { input: { name } },
    );
    expect(res.errors).toBeUndefined();
    return res.data!.registerAgent;
  }

  it('registers, activates, pauses, resumes and retires an agent through mutations', async () => {
    const created = await gql<{ registerAgent: Record<string, unknown> }>(
      `mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { ${AGENT_FIELDS} skills { id tags } labels { key value } heartbeatIntervalSeconds } }`,
      {
        input: {
          name: 'Lifecycle',
          endpointUrl: 'https://agents.example.com/lc',
          skills: [{ id: 'plan', name: 'Plan', tags: ['planning'] }],
          labels: [{ key: 'env', value: 'test' }],
        },
      },
    );
    expect(created.errors).toBeUndefined();
    const agent = created.data!.registerAgent;
    expect(agent).toMatchObject({
      name: 'Lifecycle',
      status: 'REGISTERED',
      health: 'OFFLINE',
      version: 1,
      endpointUrl: 'https://agents.example.com/lc',
      lastHeartbeatAt: null,
      skills: [{ id: 'plan', tags: ['planning'] }],
      labels: [{ key: 'env', value: 'test' }],
      heartbeatIntervalSeconds: 30,
    });
    const id = agent.id as string;

    let version = 1;
    for (const [mutation, status] of [
      ['activateAgent', 'ACTIVE'],
      ['pauseAgent', 'PAUSED'],
      ['resumeAgent', 'ACTIVE'],
    ] as const) {
      const res = await gql<Record<string, { status: string; version: number }>>(
        `mutation($id: ID!, $v: Int) { ${mutation}(id: $id, expectedVersion: $v) { status version } }`,
        { id, v: version },
      );
      expect(res.errors).toBeUndefined();
      expect(res.data![mutation]).toEqual({ status, version: version + 1 });
      version += 1;
    }

    const beat = await gql<{ recordHeartbeat: { health: string; version: number; lastHeartbeatAt: string } }>(
      'mutation($id: ID!) { recordHeartbeat(id: $id) { health version lastHeartbeatAt } }',
      { id },
    );
    expect(beat.data!.recordHeartbeat).toMatchObject({ health: 'HEALTHY', version });
    expect(Date.parse(beat.data!.recordHeartbeat.lastHeartbeatAt)).not.toBeNaN();

    const retired = await gql<{ retireAgent: { status: string; version: number } }>('mutation($id: ID!) { retireAgent(id: $id) { status version } }', { id });
    expect(retired.data!.retireAgent).toEqual({ status: 'RETIRED', version: version + 1 });

    const read = await gql<{ agent: { status: string; version: number } }>('query($id: ID!) { agent(id: $id) { status version } }', { id });
    expect(read.data!.agent).toEqual({ status: 'RETIRED', version: version + 1 });
  });

  it('answers an illegal transition with CONFLICT naming from and to, and changes nothing', async () => {
    const { id } = await register('Illegal');
    const res = await gql('mutation($id: ID!) { pauseAgent(id: $id) { status } }', { id });
    const err = onlyError(res);
    expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'REGISTERED', to: 'PAUSED' });
    expect(err.path).toEqual(['pauseAgent']);
    const read = await gql<{ agent: { status: string; version: number } }>('query($id: ID!) { agent(id: $id) { status version } }', { id });
    expect(read.data!.agent).toEqual({ status: 'REGISTERED', version: 1 });
  });

  it('answers a stale expectedVersion with CONFLICT carrying both versions', async () => {
    const { id } = await register('Versioned');
    await gql('mutation($id: ID!) { updateAgent(id: $id, input: { name: "Versioned 2" }) { version } }', { id });
    const res = await gql('mutation($id: ID!) { updateAgent(id: $id, input: { name: "Versioned 3" }, expectedVersion: 1) { version } }', { id });
    expect(onlyError(res).extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
  });

  it('rejects a malformed id with BAD_USER_INPUT; an unknown id is null for the query and NOT_FOUND for mutations', async () => {
    const bad = await gql('{ agent(id: "not-a-uuid") { id } }');
    expect(onlyError(bad).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'id' });
    const badMutation = await gql('mutation { activateAgent(id: "42") { id } }');
    expect(onlyError(badMutation).extensions?.code).toBe('BAD_USER_INPUT');

    const unknown = randomUUID();
    const missing = await gql<{ agent: null }>('query($id: ID!) { agent(id: $id) { id } }', { id: unknown });
    expect(missing.errors).toBeUndefined();
    expect(missing.data).toEqual({ agent: null });
    for (const mutation of ['activateAgent(id: $id)', 'retireAgent(id: $id)', 'recordHeartbeat(id: $id)', 'updateAgent(id: $id, input: { name: "x" })']) {
      const res = await gql(`mutation($id: ID!) { ${mutation} { id } }`, { id: unknown });
      expect(onlyError(res).extensions).toMatchObject({ code: 'NOT_FOUND', id: unknown });
    }
  });

  it('refuses a NUL character in a string argument or variable with 400 BAD_USER_INPUT, before any resolver (callers other than the gateway too)', async () => {
    const before = await agentCount();
    const literal = await gql('mutation { registerAgent(input: { name: "bad\\u0000name" }) { id } }');
    expect(literal.status).toBe(400);
    expect(onlyError(literal).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'input.name' });
    const variable = await gql('mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }', { input: { name: 'bad\u0000name' } });
    expect(variable.status).toBe(400);
    expect(onlyError(variable).extensions).toMatchObject({ code: 'BAD_USER_INPUT', variable: '$input.name' });
    expect(await agentCount()).toBe(before);
  });

  it('rejects bad input with a clear code and writes nothing', async () => {
    await register('Baseline');
    const before = await agentCount();

    const enumLiteral = await gql('{ agents(filter: { status: SLEEPING }) { totalCount } }');
    expect(onlyError(enumLiteral).extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(onlyError(enumLiteral).message).toContain('SLEEPING');
    const enumVariable = await gql('query($f: AgentFilter) { agents(filter: $f) { totalCount } }', { f: { status: 'SLEEPING' } });
    expect(onlyError(enumVariable).extensions?.code).toBe('BAD_USER_INPUT');

    const longName = await gql('mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }', { input: { name: 'n'.repeat(201) } });
    expect(onlyError(longName).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.name' });

    const badInterval = await gql('mutation { registerAgent(input: { name: "x", heartbeatIntervalSeconds: 1 }) { id } }');
    expect(onlyError(badInterval).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.heartbeatIntervalSeconds' });

    const malformed = await post('{"query": "mutation { registerAgent(input: { name: \\"x\\" }) { id } }"');
    expect(malformed.status).toBe(400);
    expect((malformed.json.errors as GraphQLErrorBody[])[0]?.extensions?.code).toBe('BAD_REQUEST');

    for (const card of ['a string', [1, 2], 42, null]) {
      const res = await gql('mutation($card: JSON!) { registerAgentFromCard(card: $card) { id } }', { card });
      expect(onlyError(res).extensions?.code).toBe('BAD_USER_INPUT');
    }
    const stringCard = await gql('mutation { registerAgentFromCard(card: "x") { id } }');
    expect(onlyError(stringCard).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'card' });
    expect(onlyError(stringCard).message).toContain('JSON object');

    const noSkills = await gql('mutation($card: JSON!) { registerAgentFromCard(card: $card) { id } }', {
      card: { name: 'x', description: 'd', version: '1', url: 'https://x.example.com' },
    });
    expect(onlyError(noSkills).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'card.skills' });

    const badCursor = await gql('{ agents(after: "garbage") { totalCount } }');
    expect(onlyError(badCursor).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'after' });
    const badFirst = await gql('{ agents(first: 0) { totalCount } }');
    expect(onlyError(badFirst).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });

    expect(await agentCount()).toBe(before);
  });

  it('registers from an A2A v1.0 card and returns the card as given', async () => {
    const card = {
      name: 'Card Agent',
      description: 'From a card',
      version: '2.0.0',
      supportedInterfaces: [{ url: 'https://card.example.com/a2a', protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
      capabilities: { streaming: true },
      defaultInputModes: ['text/plain'],
      defaultOutputModes: ['application/json'],
      skills: [{ id: 'x', name: 'X', description: 'does x', tags: ['x'] }],
    };
    const res = await gql<{ registerAgentFromCard: Record<string, unknown> }>(
      `mutation($card: JSON!) { registerAgentFromCard(card: $card, labels: [{ key: "src", value: "card" }], heartbeatIntervalSeconds: 60) {
        name agentVersion endpointUrl capabilities { streaming pushNotifications } skills { id tags } labels { key value }
        defaultInputModes defaultOutputModes heartbeatIntervalSeconds card } }`,
      { card },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.registerAgentFromCard).toEqual({
      name: 'Card Agent',
      agentVersion: '2.0.0',
      endpointUrl: 'https://card.example.com/a2a',
      capabilities: { streaming: true, pushNotifications: false },
      skills: [{ id: 'x', tags: ['x'] }],
      labels: [{ key: 'src', value: 'card' }],
      defaultInputModes: ['text/plain'],
      defaultOutputModes: ['application/json'],
      heartbeatIntervalSeconds: 60,
      card,
    });
  });

  it('lists with filters and cursors', async () => {
    const tag = `tag-${randomUUID().slice(0, 8)}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await gql<{ registerAgent: { id: string } }>('mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }', {
        input: { name: `Listed ${i}`, skills: [{ id: 's', name: 's', tags: [tag] }] },
      });
      ids.push(res.data!.registerAgent.id);
    }
    type Page = { agents: { totalCount: number; nodes: { id: string }[]; edges: { cursor: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } };
    const query =
      'query($f: AgentFilter, $after: String) { agents(filter: $f, first: 2, after: $after) { totalCount nodes { id } edges { cursor } pageInfo { hasNextPage endCursor } } }';
    const first = await gql<Page>(query, { f: { skillTag: tag } });
    expect(first.data!.agents.totalCount).toBe(3);
    expect(first.data!.agents.pageInfo.hasNextPage).toBe(true);
    const second = await gql<Page>(query, { f: { skillTag: tag }, after: first.data!.agents.pageInfo.endCursor });
    expect(second.data!.agents.pageInfo.hasNextPage).toBe(false);
    const listed = [...first.data!.agents.nodes, ...second.data!.agents.nodes].map((n) => n.id);
    expect(listed.sort()).toEqual([...ids].sort());
  });

  it('answers compact JSON that no cache may store', async () => {
    const res = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await identityHeaders('agents')) },
      body: JSON.stringify({ query: '{ agents(first: 1) { totalCount } }' }),
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toBe(JSON.stringify(JSON.parse(text)));
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('answers concurrent heartbeats each with its own agent, every one committed', async () => {
    const agentsToBeat = await Promise.all(Array.from({ length: 5 }, (_, i) => register(`Beating ${i}`)));
    for (const a of agentsToBeat) {
      const activated = await gql(`mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: a.id });
      expect(activated.errors).toBeUndefined();
    }
    const missing = randomUUID();
    await running.settleEvents();
    const commitsBefore = running.database.stats.commits;
    const ids = [...agentsToBeat.map((a) => a.id), missing, ...agentsToBeat.map((a) => a.id)];
    const answers = await Promise.all(
      ids.map((id) =>
        gql<{ recordHeartbeat: { id: string; lastHeartbeatAt: string } }>(`mutation($id: ID!) { recordHeartbeat(id: $id) { id lastHeartbeatAt } }`, { id }),
      ),
    );
    answers.forEach((res, i) => {
      if (ids[i] === missing) {
        expect(onlyError(res).extensions?.code).toBe('NOT_FOUND');
      } else {
        expect(res.errors).toBeUndefined();
        expect(res.data?.recordHeartbeat.id).toBe(ids[i]);
      }
    });
    const commits = running.database.stats.commits - commitsBefore;
    // Ten successful writes: PostgreSQL commits each on its own; SQLite groups those that arrive together.
    if (DATABASE_URL) expect(commits).toBe(10);
    else expect(commits).toBeLessThanOrEqual(10);
  });

  it('resolves 50 entity references with one SQL statement', async () => {
    const aliases = Array.from({ length: 50 }, (_, i) => `a${i}: registerAgent(input: { name: "Entity ${i}" }) { id }`).join('\n');
    const created = await gql<Record<string, { id: string }>>(`mutation { ${aliases} }`);
    expect(created.errors).toBeUndefined();
    const ids = Object.values(created.data!).map((a) => a.id);
    expect(ids).toHaveLength(50);

    const unknown = randomUUID();
    const representations = [
      ...ids.map((id) => ({ __typename: 'Agent', id })),
      { __typename: 'Agent', id: unknown },
      { __typename: 'Agent', id: 'not-a-uuid' },
    ];
    await running.settleEvents();
    const before = running.database.stats.queries;
    const res = await gql<{ _entities: ({ id: string; name: string; health: string } | null)[] }>(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Agent { id name health } } }',
      { r: representations },
    );
    const statements = running.database.stats.queries - before;
    expect(res.errors).toBeUndefined();
    expect(statements).toBe(1);
    const entities = res.data!._entities;
    expect(entities).toHaveLength(52);
    expect(entities.slice(0, 50).map((e) => e?.id)).toEqual(ids);
    expect(entities[0]).toEqual({ id: ids[0], name: 'Entity 0', health: 'OFFLINE' });
    expect(entities.slice(50)).toEqual([null, null]);
  });
});
