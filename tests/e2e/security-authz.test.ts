// Authorization end to end, against real processes: scopes enforced by the gateway before anything
// runs (and again in the subgraphs), and tenant isolation on every read and write path of the
// graph, REST and subscriptions: another tenant's id behaves exactly like an id that does not exist.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rest } from '../rest/client.ts';
import { bearer, identityHeaders } from '../support/auth.ts';
import { gql, gqlOk, manageProcesses, startPlatform, type GqlResult, type Platform, type ServiceProcess } from '../support/processes.ts';
import { gatewayStats, subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let base: string;
// Admins of two tenants.
let acme: Record<string, string>;
let globex: Record<string, string>;
// What acme owns.
const own = { agent: '', task: '', definition: '', run: '', key: '' };

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-authz-'));
  platform = await startPlatform({ dataDir });
  base = platform.url.replace(/\/graphql$/, '');
  acme = await bearer({ tenant: 'acme', subject: 'ann@acme' });
  globex = await bearer({ tenant: 'globex', subject: 'gus@globex' });
  const as = <T>(query: string, variables?: Record<string, unknown>) => gqlOk<T>(platform.url, query, variables, acme);
  own.agent = (
    await as<{ registerAgent: { id: string } }>(
      'mutation { registerAgent(input: { name: "Acme worker", skills: [{ id: "s", name: "S", tags: ["acme"] }] }) { id } }',
    )
  ).registerAgent.id;
  await as('mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: own.agent });
  own.task = (
    await as<{ submitTask: { id: string } }>('mutation { submitTask(input: { title: "Acme job", requiredSkillTags: ["acme"] }) { id } }')
  ).submitTask.id;
  await as('mutation($a: ID!) { claimTask(agentId: $a, skillTags: ["acme"], leaseSeconds: 600) { id } }', { a: own.agent });
  own.definition = (
    await as<{ createWorkflowDefinition: { id: string } }>(
      'mutation { createWorkflowDefinition(input: { name: "acme-flow", steps: [{ id: "one", title: "One", requiredSkillTags: ["nobody"] }] }) { id } }',
    )
  ).createWorkflowDefinition.id;
  own.run = (
    await as<{ startWorkflowRun: { id: string } }>('mutation($d: ID!) { startWorkflowRun(definitionId: $d) { id } }', { d: own.definition })
  ).startWorkflowRun.id;
  own.key = (
    await as<{ createApiKey: { apiKey: { id: string } } }>('mutation { createApiKey(input: { name: "acme key", scopes: ["agents:read"] }) { apiKey { id } } }')
  ).createApiKey.apiKey.id;
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const requestLines = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;
const codes = (r: GqlResult) => r.errors?.map((e) => e.extensions?.code);

describe('scopes', () => {
  it('a field the caller may not see comes back null with FORBIDDEN, and its subgraph is not asked', async () => {
    const tasksOnly = await bearer({ tenant: 'acme', scopes: ['tasks:read'] });
    const before = requestLines(platform.agents);
    const res = await gql(platform.url, 'query($id: ID!) { task(id: $id) { title agent { name } } }', { id: own.task }, tasksOnly);
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ task: { title: 'Acme job', agent: null } });
    expect(res.errors).toEqual([
      expect.objectContaining({
        path: ['task', 'agent'],
        extensions: expect.objectContaining({ code: 'FORBIDDEN', requiredScopes: [['agents:read']], missingScopes: ['agents:read'] }),
      }),
    ]);
    expect(requestLines(platform.agents)).toBe(before);
  });

  it('a mutation without its scope is not run', async () => {
    const reader = await bearer({ tenant: 'acme', scopes: ['agents:read', 'tasks:read'] });
    const count = async () => (await gqlOk<{ tasks: { totalCount: number } }>(platform.url, '{ tasks { totalCount } }', undefined, acme)).tasks.totalCount;
    const before = await count();
    const res = await gql(platform.url, 'mutation { submitTask(input: { title: "sneaky" }) { id } }', undefined, reader);
    expect(res.data).toBeNull();
    expect(res.errors).toEqual([
      expect.objectContaining({ path: ['submitTask'], extensions: expect.objectContaining({ code: 'FORBIDDEN', missingScopes: ['tasks:write'] }) }),
    ]);
    expect(await count()).toBe(before);
  });

  it('a subscription without its scope is refused, over graphql-ws and SSE', async () => {
    const agentsOnly = await bearer({ tenant: 'acme', scopes: ['agents:read'] });
    const client = wsClient(platform.url, { connectionParams: agentsOnly });
    try {
      const sub = subscribe(client, { query: 'subscription { taskUpdated { kind } }' });
      const ending = await sub.ended;
      expect(ending.kind).toBe('error');
      expect(ending.kind === 'error' ? ending.error : null).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'FORBIDDEN' }) })]);
      // The permitted one on the same connection works.
      const allowed = subscribe(client, { query: 'subscription { agentHeartbeat { occurredAt } }' });
      await waitFor('the allowed subscription', async () => (await gatewayStats(platform.url)).clientSubscriptions === 1);
      allowed.unsubscribe();
    } finally {
      await client.dispose();
    }
    const sse = await fetch(`${base}/graphql/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...agentsOnly },
      body: JSON.stringify({ query: 'subscription { taskUpdated { kind } }' }),
    });
    expect(sse.status).toBe(403);
    expect(await sse.json()).toEqual({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'FORBIDDEN' }) })] });
  });

  it('REST answers 401 without credentials and 403 without the scope, changing nothing', async () => {
    expect((await rest(base, 'GET', '/v1/tasks', { headers: { authorization: '' } })).status).toBe(401);
    const reader = await bearer({ tenant: 'acme', scopes: ['agents:read'] });
    const list = await rest(base, 'GET', '/v1/tasks', { headers: reader });
    expect(list.status).toBe(403);
    expect(list.body).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    const create = await rest(base, 'POST', '/v1/agents', { headers: reader, body: { name: 'Not allowed' } });
    expect(create.status).toBe(403);
    const names = await gqlOk<{ agents: { nodes: { name: string }[] } }>(platform.url, '{ agents(first: 100) { nodes { name } } }', undefined, acme);
    expect(names.agents.nodes.map((a) => a.name)).not.toContain('Not allowed');
  });

  it('subgraphs check the scopes again from the signed identity (defence in depth)', async () => {
    const post = async (url: string, headers: Record<string, string>, query: string) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
      return (await res.json()) as { errors?: { extensions?: Record<string, unknown> }[] };
    };
    const agentsOnly = await identityHeaders('orchestration', { tenantId: 'acme', scopes: ['agents:read'] });
    expect((await post(platform.orchestration.url, agentsOnly, '{ tasks { totalCount } }')).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await post(platform.orchestration.url, agentsOnly, 'mutation { submitTask(input: { title: "x" }) { id } }')).errors?.[0]?.extensions?.code).toBe(
      'FORBIDDEN',
    );
    const anonymous = await identityHeaders('agents', { kind: 'anonymous', subject: null, tenantId: null, scopes: [] });
    expect((await post(platform.agents.url, anonymous, '{ agents { totalCount } }')).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const noAdmin = await identityHeaders('governance', { tenantId: 'acme', scopes: ['agents:read'] });
    expect((await post(platform.governance.url, noAdmin, '{ apiKeys { totalCount } }')).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('tenant isolation', () => {
  /** The errors with the id taken out, so a foreign id and an unknown one can be compared. */
  const shape = (res: GqlResult, id: string) => ({
    data: res.data ?? null,
    errors: res.errors?.map((e) => ({ code: e.extensions?.code, message: e.message.replaceAll(id, '<id>'), path: e.path })),
  });

  it('reads: another tenant’s ids find nothing, and lists do not show its rows', async () => {
    const reads: [string, string][] = [
      ['query($id: ID!) { agent(id: $id) { name } }', own.agent],
      ['query($id: ID!) { task(id: $id) { title } }', own.task],
      ['query($id: ID!) { workflowDefinition(id: $id) { name } }', own.definition],
      ['query($id: ID!) { workflowRun(id: $id) { status } }', own.run],
      ['query($id: ID!) { apiKey(id: $id) { name } }', own.key],
      ['query($id: ID!) { tasks(filter: { agentId: $id }) { totalCount } }', own.agent],
      ['query($id: ID!) { tasks(filter: { workflowRunId: $id }) { totalCount } }', own.run],
      ['query($id: ID!) { workflowRuns(filter: { definitionId: $id }) { totalCount } }', own.definition],
    ];
    for (const [query, id] of reads) {
      const foreign = await gql(platform.url, query, { id }, globex);
      const unknownId = randomUUID();
      const unknown = await gql(platform.url, query, { id: unknownId }, globex);
      expect(shape(foreign, id), query).toEqual(shape(unknown, unknownId));
      // The owner does see it.
      expect(JSON.stringify(await gqlOk(platform.url, query, { id }, acme))).not.toMatch(/null|"totalCount":0/);
    }
    const lists = await gqlOk<Record<string, { totalCount: number }>>(
      platform.url,
      '{ agents { totalCount } tasks { totalCount } workflowDefinitions { totalCount } workflowRuns { totalCount } apiKeys { totalCount } }',
      undefined,
      globex,
    );
    expect(Object.values(lists).map((l) => l.totalCount)).toEqual([0, 0, 0, 0, 0]);
  });

  it('writes: every mutation on another tenant’s id fails exactly like on an unknown id, and changes nothing', async () => {
    const before = await gqlOk(
      platform.url,
      'query($a: ID!, $t: ID!, $r: ID!) { agent(id: $a) { status version lastHeartbeatAt } task(id: $t) { state attempts progress { percent } } workflowRun(id: $r) { status } }',
      { a: own.agent, t: own.task, r: own.run },
      acme,
    );
    const writes: [string, Record<string, unknown>, string][] = [
      ['mutation($id: ID!) { pauseAgent(id: $id) { id } }', { id: own.agent }, 'id'],
      ['mutation($id: ID!) { retireAgent(id: $id) { id } }', { id: own.agent }, 'id'],
      ['mutation($id: ID!) { updateAgent(id: $id, input: { name: "Hijacked" }) { id } }', { id: own.agent }, 'id'],
      ['mutation($id: ID!) { recordHeartbeat(id: $id) { id } }', { id: own.agent }, 'id'],
      ['mutation($id: ID!) { cancelTask(id: $id) { id } }', { id: own.task }, 'id'],
      ['mutation($id: ID!, $a: ID!) { reportTaskProgress(taskId: $id, agentId: $a, percent: 99) { id } }', { id: own.task, a: own.agent }, 'id'],
      ['mutation($id: ID!, $a: ID!) { completeTask(taskId: $id, agentId: $a, result: { stolen: true }) { id } }', { id: own.task, a: own.agent }, 'id'],
      ['mutation($id: ID!, $a: ID!) { failTask(taskId: $id, agentId: $a, error: { message: "x" }) { id } }', { id: own.task, a: own.agent }, 'id'],
      ['mutation($id: ID!, $a: ID!) { requestTaskInput(taskId: $id, agentId: $a, message: "x") { id } }', { id: own.task, a: own.agent }, 'id'],
      ['mutation($id: ID!) { provideTaskInput(taskId: $id, input: { x: 1 }) { id } }', { id: own.task }, 'id'],
      ['mutation($id: ID!) { claimTask(agentId: $id, skillTags: ["acme"]) { id } }', { id: own.agent }, 'id'],
      ['mutation($id: ID!) { startWorkflowRun(definitionId: $id) { id } }', { id: own.definition }, 'id'],
      ['mutation($id: ID!) { cancelWorkflowRun(id: $id) { id } }', { id: own.run }, 'id'],
      ['mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: own.key }, 'id'],
    ];
    for (const [query, variables, idVariable] of writes) {
      const id = String(variables[idVariable]);
      const foreign = await gql(platform.url, query, variables, globex);
      const unknownId = randomUUID();
      const unknown = await gql(platform.url, query, { ...variables, [idVariable]: unknownId }, globex);
      expect(shape(foreign, id), query).toEqual(shape(unknown, unknownId));
      expect(foreign.data === null || Object.values(foreign.data ?? {}).every((v) => v === null), query).toBe(true);
      // NOT_FOUND, or for claimTask AGENT_NOT_FOUND: another tenant's agent is one this tenant does not have.
      expect(codes(foreign) ?? ['none'], query).toEqual([query.includes('claimTask') ? 'AGENT_NOT_FOUND' : 'NOT_FOUND']);
    }
    const after = await gqlOk(
      platform.url,
      'query($a: ID!, $t: ID!, $r: ID!) { agent(id: $a) { status version lastHeartbeatAt } task(id: $t) { state attempts progress { percent } } workflowRun(id: $r) { status } }',
      { a: own.agent, t: own.task, r: own.run },
      acme,
    );
    expect(after).toEqual(before);
    const keys = await gqlOk<{ apiKeys: { nodes: { id: string; revokedAt: string | null }[] } }>(
      platform.url,
      '{ apiKeys { nodes { id revokedAt } } }',
      undefined,
      acme,
    );
    expect(keys.apiKeys.nodes).toEqual([{ id: own.key, revokedAt: null }]);
  });

  it('REST: another tenant’s id answers 404 like an unknown one', async () => {
    for (const path of [`/v1/agents/${own.agent}`, `/v1/tasks/${own.task}`, `/v1/workflow-definitions/${own.definition}`, `/v1/workflow-runs/${own.run}`]) {
      const foreign = await rest(base, 'GET', path, { headers: globex });
      expect(foreign.status, path).toBe(404);
      expect(foreign.body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
      expect((await rest(base, 'GET', path, { headers: acme })).status, path).toBe(200);
    }
    const write = await rest(base, 'POST', `/v1/agents/${own.agent}/pause`, { headers: globex });
    const unknown = await rest(base, 'POST', `/v1/agents/${randomUUID()}/pause`, { headers: globex });
    expect([write.status, (write.body as { code?: string }).code]).toEqual([unknown.status, (unknown.body as { code?: string }).code]);
    expect(write.status).toBe(404);
    const list = await rest(base, 'GET', '/v1/agents', { headers: globex });
    expect(list.body).toMatchObject({ totalCount: 0, nodes: [] });
  });

  it('subscriptions: another tenant’s events never arrive, and tenants never share a stream', async () => {
    const query = 'subscription($t: ID) { taskUpdated(taskId: $t) { kind task { progress { percent } } } }';
    const mine = wsClient(platform.url, { connectionParams: acme });
    const theirs = wsClient(platform.url, { connectionParams: globex });
    try {
      const before = subgraphOpenSubscriptions(platform.orchestration).opened;
      const spy = subscribe(theirs, { query, variables: { t: own.task } });
      const spyAll = subscribe(theirs, { query, variables: { t: null } });
      const owner = subscribe(mine, { query, variables: { t: own.task } });
      await subgraphSubscribed(platform.orchestration, before, 3);
      // Same operation and variables, different tenants: separate upstream streams.
      expect((await gatewayStats(platform.url)).sharedStreams).toBe(3);
      await gqlOk(
        platform.url,
        'mutation($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 42, leaseSeconds: 600) { id } }',
        { t: own.task, a: own.agent },
        acme,
      );
      expect((await owner.next()).data).toMatchObject({ taskUpdated: { kind: 'STATE_CHANGED' } });
      expect((await owner.next()).data).toEqual({ taskUpdated: { kind: 'PROGRESS_REPORTED', task: { progress: { percent: 42 } } } });
      // Give a leak time to show, then check nothing reached the other tenant.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(spy.buffered).toEqual([]);
      expect(spyAll.buffered).toEqual([]);
      spy.unsubscribe();
      spyAll.unsubscribe();
      owner.unsubscribe();
    } finally {
      await mine.dispose();
      await theirs.dispose();
    }
  });
});
