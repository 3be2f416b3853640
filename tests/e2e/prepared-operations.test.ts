// The gateway's fast path for repeated documents (gateway/prepared-operations.ts) against Apollo
// Server's own pipeline: the same requests go to a gateway with the fast path (in this process, so
// its use can be counted) and to one without it (PREPARED_OPERATIONS_MAX=0, its own process), both
// in front of the same real subgraphs. Every answer must be the same: status, headers, body.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { startGateway, type RunningGateway } from '../../gateway/server.ts';
import { bearer, TEST_SECURITY_ENV } from '../support/auth.ts';
import { subscribe, wsClient } from '../subscriptions/support.ts';
import {
  getFreePort,
  gqlOk,
  manageProcesses,
  startPlatform,
  startTcpTap,
  subgraphsOf,
  TEST_RATE_LIMITS,
  withDefaultAuth,
  type Platform,
  type TcpTap,
} from '../support/processes.ts';

manageProcesses();

let dir: string;
let supergraphPath: string;
let platform: Platform;
let fast: RunningGateway;
let agentsTap: TcpTap;
let agentId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-prepared-'));
  supergraphPath = join(dir, 'supergraph.graphql');
  copyFileSync(DEFAULT_SUPERGRAPH_PATH, supergraphPath);
  platform = await startPlatform({ dataDir: dir, gatewayEnv: { PREPARED_OPERATIONS_MAX: '0' } });
  const subgraphs = subgraphsOf(platform);
  // What the fast gateway really sends to agents: a mutation must reach it once per request.
  agentsTap = await startTcpTap(platform.agents.port);
  fast = await startGateway({
    ...TEST_SECURITY_ENV,
    ...TEST_RATE_LIMITS,
    LOG_LEVEL: 'silent',
    GATEWAY_PORT: String(await getFreePort()),
    SUPERGRAPH_PATH: supergraphPath,
    SUPERGRAPH_POLL_MS: '200',
    SUBGRAPH_AGENTS_URL: agentsTap.url,
    SUBGRAPH_ORCHESTRATION_URL: subgraphs.orchestration,
    SUBGRAPH_GOVERNANCE_URL: subgraphs.governance,
  });
  const registered = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Prepared" }) { id } }');
  agentId = registered.registerAgent.id;
});

afterAll(async () => {
  await fast?.stop();
  await agentsTap?.close();
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// Differ on every request by design: the time, the request id, what is left of the budget and when it resets.
const VARYING = new Set(['date', 'x-request-id', 'ratelimit-remaining', 'ratelimit-reset']);

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return call(url, 'POST', body, headers);
}

async function call(url: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(await withDefaultAuth(headers)) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const kept: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    kept[name] = VARYING.has(name) ? '…' : value;
  });
  return { status: res.status, headers: kept, body: await res.text() };
}

/**
 * Sends the request to the gateway without the fast path, then twice to the one with it (the first
 * makes the document known, the second may take the fast path), and returns the three answers with
 * the number of fast-path answers the second request added.
 */
async function threeWays(body: unknown, headers: Record<string, string> = {}) {
  const apollo = await post(platform.url, body, headers);
  const first = await post(fast.url, body, headers);
  const before = fast.prepared.stats().hits;
  const second = await post(fast.url, body, headers);
  return { apollo, first, second, fastHits: fast.prepared.stats().hits - before };
}

const AGENT = 'query Agent($id: ID!) { agent(id: $id) { id name status skills { id } } }';

describe('prepared operations: the fast path answers as Apollo Server does', () => {
  it('answers a repeated query without the pipeline, with the same status, headers and body', async () => {
    const { apollo, first, second, fastHits } = await threeWays({ query: AGENT, variables: { id: agentId } });
    expect(fastHits).toBe(1);
    expect(apollo.status).toBe(200);
    expect(JSON.parse(apollo.body)).toEqual({ data: { agent: { id: agentId, name: 'Prepared', status: 'REGISTERED', skills: [] } } });
    expect(first).toEqual(apollo);
    expect(second).toEqual(apollo);
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(second.headers['cache-control']).toBe('no-store');
    expect(second.headers['ratelimit-limit']).toBe(TEST_RATE_LIMITS.RATE_LIMIT_HTTP_REQUESTS);
  });

  it('keys documents by text and operation name: each operation of a document answers its own', async () => {
    const document = `query A { agents(first: 1) { nodes { id } } } query B($id: ID!) { agent(id: $id) { name } }`;
    const a = await threeWays({ query: document, operationName: 'A' });
    const b = await threeWays({ query: document, operationName: 'B', variables: { id: agentId } });
    expect([a.fastHits, b.fastHits]).toEqual([1, 1]);
    expect(a.second).toEqual(a.apollo);
    expect(b.second).toEqual(b.apollo);
    expect(JSON.parse(b.second.body)).toEqual({ data: { agent: { name: 'Prepared' } } });
    expect(JSON.parse(a.second.body).data.agents.nodes).toHaveLength(1);
  });

  it('negotiates the content type as Apollo Server does, and leaves an unacceptable Accept to it', async () => {
    for (const accept of ['application/graphql-response+json', 'application/graphql-response+json, application/json;q=0.9', '*/*', 'application/json']) {
      const { apollo, second } = await threeWays({ query: AGENT, variables: { id: agentId } }, { accept });
      expect(second, accept).toEqual(apollo);
    }
    const refused = await threeWays({ query: AGENT, variables: { id: agentId } }, { accept: 'text/csv' });
    expect(refused.apollo.status).toBe(406);
    expect(refused.fastHits).toBe(0);
    expect(refused.second).toEqual(refused.apollo);
  });

  it('hands answers with errors to Apollo Server: variable errors keep their 400 and code', async () => {
    const query = 'query Page($n: Int!) { agents(first: $n) { nodes { id } } }';
    await post(fast.url, { query, variables: { n: 1 } });
    const { apollo, second, fastHits } = await threeWays({ query, variables: { n: 'many' } });
    expect(fastHits).toBe(1);
    expect(apollo.status).toBe(400);
    expect(JSON.parse(apollo.body).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(second).toEqual(apollo);
  });

  it('hands refused credentials and fields the caller may not see to Apollo Server, answered alike', async () => {
    const badToken = await threeWays({ query: AGENT, variables: { id: agentId } }, { authorization: 'Bearer not-a-token' });
    expect(badToken.apollo.status).toBe(401);
    expect(badToken.second).toEqual(badToken.apollo);

    // agents:read without tasks:read: the tasks are denied (null with an error), the rest is answered.
    const reader = await bearer({ scopes: ['agents:read'] });
    const query = 'query Mixed($id: ID!) { agent(id: $id) { name activeTaskCount } }';
    const denied = await threeWays({ query, variables: { id: agentId } }, reader);
    expect(denied.fastHits).toBe(1);
    expect(denied.apollo.status).toBe(200);
    expect(JSON.parse(denied.apollo.body).errors[0].extensions.code).toBe('FORBIDDEN');
    expect(denied.second).toEqual(denied.apollo);
  });

  it('runs a mutation once per request, also when its answer carries an error', async () => {
    const register = 'mutation Register($name: String!) { registerAgent(input: { name: $name }) { name } }';
    const count = async () =>
      (await gqlOk<{ agents: { nodes: { name: string }[] } }>(platform.url, '{ agents(first: 100) { nodes { name } } }')).agents.nodes.filter(
        (a) => a.name === 'Once',
      ).length;
    const before = fast.prepared.stats().hits;
    for (let i = 0; i < 3; i++) expect((await post(fast.url, { query: register, variables: { name: 'Once' } })).status).toBe(200);
    expect(fast.prepared.stats().hits - before).toBe(2);
    expect(await count()).toBe(3);

    // Activating twice: the second is an invalid transition, answered with the subgraph's error as Apollo answers it.
    const activate = 'mutation Activate($id: ID!) { activateAgent(id: $id) { status } }';
    const fresh = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Twice" }) { id } }');
    const other = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Twice" }) { id } }');
    expect(JSON.parse((await post(fast.url, { query: activate, variables: { id: fresh.registerAgent.id } })).body)).toEqual({
      data: { activateAgent: { status: 'ACTIVE' } },
    });
    await gqlOk(platform.url, activate, { id: other.registerAgent.id });
    const apollo = await post(platform.url, { query: activate, variables: { id: other.registerAgent.id } });
    const hitsBefore = fast.prepared.stats().hits;
    const sentBefore = agentsTap.received().split('activateAgent').length;
    const second = await post(fast.url, { query: activate, variables: { id: fresh.registerAgent.id } });
    expect(fast.prepared.stats().hits - hitsBefore).toBe(1);
    // Executed once by the fast path; Apollo only formatted the answer.
    expect(agentsTap.received().split('activateAgent').length - sentBefore).toBe(1);
    expect(JSON.parse(apollo.body).errors).toHaveLength(1);
    expect(second).toEqual(apollo);
  });

  it('answers REST routes through the same fast path, errors included, as Apollo Server does', async () => {
    const rest = (gateway: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      call(gateway.replace(/\/graphql$/, path), method, body, headers);
    // Each REST route is one fixed operation: known after its first use.
    for (const gateway of [platform.url, fast.url]) await rest(gateway, 'GET', `/v1/agents/${agentId}`);
    const before = fast.prepared.stats().hits;
    const apolloOne = await rest(platform.url, 'GET', `/v1/agents/${agentId}`);
    const fastOne = await rest(fast.url, 'GET', `/v1/agents/${agentId}`);
    expect(fast.prepared.stats().hits - before).toBe(1);
    expect(apolloOne.status).toBe(200);
    expect(JSON.parse(fastOne.body)).toMatchObject({ id: agentId, name: 'Prepared' });
    expect(fastOne).toEqual(apolloOne);

    // Not found (a null result); a malformed id and a forbidden field (errors: Apollo formats them
    // from the computed result). The problem documents name their request: compare the rest.
    const same = (a: Answer | undefined, b: Answer | undefined) => {
      const { requestId: _a, ...left } = JSON.parse(a?.body ?? '{}') as Record<string, unknown>;
      const { requestId: _b, ...right } = JSON.parse(b?.body ?? '{}') as Record<string, unknown>;
      expect({ ...b, body: right }).toEqual({ ...a, body: left });
    };
    const missing = await Promise.all([platform.url, fast.url].map((g) => rest(g, 'GET', `/v1/agents/${randomUUID()}`)));
    expect(missing[0]?.status).toBe(404);
    expect(missing[1]?.status).toBe(404);
    const malformed = await Promise.all([platform.url, fast.url].map((g) => rest(g, 'GET', '/v1/agents/not-a-uuid')));
    expect(malformed[0]?.status).toBe(400);
    same(malformed[0], malformed[1]);
    const noTasks = await bearer({ scopes: ['agents:read'] });
    for (const gateway of [platform.url, fast.url]) await rest(gateway, 'GET', '/v1/tasks', undefined, noTasks);
    const forbidden = await Promise.all([platform.url, fast.url].map((g) => rest(g, 'GET', '/v1/tasks', undefined, noTasks)));
    expect(forbidden[0]?.status).toBe(403);
    expect(forbidden[0]?.headers['content-type']).toMatch(/^application\/problem\+json/);
    same(forbidden[0], forbidden[1]);

    // A mutation route whose second use fails: run once, answered with Apollo's error mapping.
    const created = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Rested" }) { id } }');
    const retire = (g: string) => rest(g, 'POST', `/v1/agents/${created.registerAgent.id}/retire`, {});
    expect((await retire(fast.url)).status).toBe(200);
    const sentBefore = agentsTap.received().split('retireAgent').length;
    const again = await retire(fast.url);
    expect(agentsTap.received().split('retireAgent').length - sentBefore).toBe(1);
    const apolloAgain = await retire(platform.url);
    expect(apolloAgain.status).toBeGreaterThanOrEqual(400);
    same(apolloAgain, again);
  });

  it('answers repeated queries over graphql-ws through the same path, as over HTTP', async () => {
    const client = wsClient(fast.url);
    try {
      const once = async () => {
        const sub = subscribe(client, { query: AGENT, variables: { id: agentId } });
        const result = await sub.next();
        expect(await sub.ended).toEqual({ kind: 'complete' });
        return result;
      };
      const first = await once();
      const before = fast.prepared.stats().hits;
      const second = await once();
      expect(fast.prepared.stats().hits - before).toBe(1);
      expect(second).toEqual(first);
      expect(second).toEqual(JSON.parse((await post(platform.url, { query: AGENT, variables: { id: agentId } })).body));
    } finally {
      await client.dispose();
    }
  });

  it('leaves requests with other fields, other content types or a query-plan header to Apollo Server', async () => {
    await post(fast.url, { query: AGENT, variables: { id: agentId } });
    const cases: { body: unknown; headers?: Record<string, string> }[] = [
      { body: { query: AGENT, variables: { id: agentId }, extensions: {} } },
      { body: JSON.stringify({ query: AGENT, variables: { id: agentId } }), headers: { 'content-type': 'text/plain' } },
      { body: { query: AGENT, variables: '{}' } },
      { body: { query: AGENT, variables: { id: agentId } }, headers: { 'apollo-query-plan-experimental': '1' } },
    ];
    for (const { body, headers } of cases) {
      const before = fast.prepared.stats().hits;
      const apollo = await post(platform.url, body, headers);
      const answer = await post(fast.url, body, headers);
      expect(fast.prepared.stats().hits - before, JSON.stringify({ body, headers })).toBe(0);
      expect(answer).toEqual(apollo);
    }
  });

  it('forgets every document when the supergraph changes: a removed field is invalid at once', async () => {
    const query = '{ agents(first: 1) { nodes { activeTaskCount } } }';
    await post(fast.url, { query });
    const known = await post(fast.url, { query });
    expect(known.status).toBe(200);
    expect(fast.prepared.stats().size).toBeGreaterThan(0);

    const original = readFileSync(supergraphPath, 'utf8');
    writeFileSync(
      supergraphPath,
      original.replace(/(\n *"""(?:(?!""")[\s\S])*""")?\n *activeTaskCount: Int! @join__field\(graph: ORCHESTRATION\)[^\n]*\n/, '\n'),
    );
    await expect.poll(async () => (await post(fast.url, { query })).status, { timeout: 15_000, interval: 100 }).toBe(400);
    // Nothing validated against the old schema is left (the refused query itself is never remembered).
    expect(fast.prepared.stats().size).toBe(0);
    const after = await post(fast.url, { query });
    expect(JSON.parse(after.body).errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    writeFileSync(supergraphPath, original);
  });
});
