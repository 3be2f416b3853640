// Subscriptions through the gateway as a client sees them: the subgraphs and the gateway are real
// processes, the client is graphql-ws (and graphql-sse) over real sockets, and events come from
// real mutations. Each test works on its own agent and skill tag, so tests never claim each
// other's tasks; "only matching events" is shown by ordering: a non-matching change is made
// first, so had it been delivered it would be the first result.
import { defaultAuthorization } from '../support/auth.ts';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';
import {
  gatewayStats,
  refusal,
  subgraphOpenSubscriptions,
  subgraphSubscribed,
  subscribe,
  waitFor,
  wsClient,
  type TestSubscription,
} from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let client: Client;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-subscriptions-'));
  platform = await startPlatform({ dataDir });
  client = wsClient(platform.url);
});

afterEach(async () => {
  // Every test releases what it subscribed: nothing may stay open upstream.
  await waitFor('all subscriptions released', async () => (await gatewayStats(platform.url)).upstreamSubscriptions === 0);
});

afterAll(async () => {
  await client?.dispose();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** An active agent with a skill tag of its own. */
async function worker(name: string): Promise<{ id: string; tag: string }> {
  const tag = `tag-${randomUUID().slice(0, 8)}`;
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    `mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }`,
    { input: { name, skills: [{ id: 'work', name: 'Work', tags: [tag] }] } },
  );
  await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: registerAgent.id });
  return { id: registerAgent.id, tag };
}

async function submit(title: string, tag: string): Promise<string> {
  const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(platform.url, `mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }`, {
    input: { title, requiredSkillTags: [tag] },
  });
  return submitTask.id;
}

async function claim(agentId: string, tag: string): Promise<string> {
  const { claimTask } = await gqlOk<{ claimTask: { id: string } | null }>(
    platform.url,
    `mutation($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }`,
    { a: agentId, tags: [tag] },
  );
  if (!claimTask) throw new Error('nothing to claim');
  return claimTask.id;
}

const progress = (taskId: string, agentId: string, percent: number) =>
  gqlOk(platform.url, `mutation($t: ID!, $a: ID!, $p: Int!) { reportTaskProgress(taskId: $t, agentId: $a, percent: $p) { id } }`, {
    t: taskId,
    a: agentId,
    p: percent,
  });

/** Subscribes and waits until the owning subgraph listens on its bus, so no later event is missed. */
async function subscribed(query: string, variables?: Record<string, unknown>, owner: 'orchestration' | 'agents' = 'orchestration'): Promise<TestSubscription> {
  const service = platform[owner];
  const before = subgraphOpenSubscriptions(service).opened;
  const subscription = subscribe(client, { query, variables });
  await subgraphSubscribed(service, before);
  return subscription;
}

describe('federated subscriptions over graphql-ws', () => {
  it('delivers a mutation event with fields from both subgraphs, and each event sees the entity as it is then', async () => {
    const { id: agentId, tag } = await worker('Summariser');
    const taskId = await submit('Summarise the report', tag);
    const sub = await subscribed(
      `subscription($task: ID) { taskUpdated(taskId: $task) { kind from to task { id title state progress { percent } agent { id name health activeTaskCount } } } }`,
      { task: taskId },
    );

    await claim(agentId, tag);
    expect(await sub.next()).toEqual({
      data: {
        taskUpdated: {
          kind: 'STATE_CHANGED',
          from: 'SUBMITTED',
          to: 'ASSIGNED',
          // name and health come from the agents subgraph, activeTaskCount from orchestration's Agent.
          task: {
            id: taskId,
            title: 'Summarise the report',
            state: 'ASSIGNED',
            progress: null,
            agent: { id: agentId, name: 'Summariser', health: 'OFFLINE', activeTaskCount: 1 },
          },
        },
      },
    });

    await gqlOk(platform.url, `mutation($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id: agentId });
    await progress(taskId, agentId, 40);
    const working = await sub.next();
    const reported = await sub.next();
    expect(working).toMatchObject({ data: { taskUpdated: { kind: 'STATE_CHANGED', from: 'ASSIGNED', to: 'WORKING' } } });
    // Fresh reads per event: the heartbeat made the agent HEALTHY, progress is 40 now.
    expect(reported).toEqual({
      data: {
        taskUpdated: {
          kind: 'PROGRESS_REPORTED',
          from: null,
          to: null,
          task: {
            id: taskId,
            title: 'Summarise the report',
            state: 'WORKING',
            progress: { percent: 40 },
            agent: { id: agentId, name: 'Summariser', health: 'HEALTHY', activeTaskCount: 1 },
          },
        },
      },
    });
    sub.unsubscribe();
  });

  it('filters: by task, by agent, by agent status, and tenant-wide', async () => {
    const a = await worker('Filter A');
    const b = await worker('Filter B');
    const t1 = await submit('for A', a.tag);
    const t2 = await submit('for B', b.tag);
    const byTask = await subscribed(`subscription($t: ID) { taskUpdated(taskId: $t) { task { id } to } }`, { t: t1 });
    const byAgent = await subscribed(`subscription($a: ID) { taskUpdated(agentId: $a) { task { id } to } }`, { a: b.id });
    const all = await subscribed(`subscription { taskUpdated { task { id } to } }`);

    await claim(b.id, b.tag); // t2: not t1, but B's
    await claim(a.id, a.tag); // t1: not B's

    expect(await byTask.next()).toEqual({ data: { taskUpdated: { task: { id: t1 }, to: 'ASSIGNED' } } });
    expect(await byAgent.next()).toEqual({ data: { taskUpdated: { task: { id: t2 }, to: 'ASSIGNED' } } });
    expect((await all.next()).data).toEqual({ taskUpdated: { task: { id: t2 }, to: 'ASSIGNED' } });
    expect((await all.next()).data).toEqual({ taskUpdated: { task: { id: t1 }, to: 'ASSIGNED' } });

    // One agent's status changes; the tenant-wide subscription also sees registrations.
    const byStatusAgent = await subscribed(`subscription($a: ID) { agentStatusChanged(agentId: $a) { agent { id name } from to } }`, { a: a.id }, 'agents');
    const anyStatus = await subscribed(`subscription { agentStatusChanged { agent { name } from to } }`, undefined, 'agents');
    await gqlOk(platform.url, `mutation($id: ID!) { pauseAgent(id: $id) { id } }`, { id: b.id });
    await gqlOk(platform.url, `mutation($id: ID!) { pauseAgent(id: $id) { id } }`, { id: a.id });
    await gqlOk(platform.url, `mutation { registerAgent(input: { name: "Newcomer" }) { id } }`);
    expect(await byStatusAgent.next()).toEqual({ data: { agentStatusChanged: { agent: { id: a.id, name: 'Filter A' }, from: 'ACTIVE', to: 'PAUSED' } } });
    expect((await anyStatus.next()).data).toEqual({ agentStatusChanged: { agent: { name: 'Filter B' }, from: 'ACTIVE', to: 'PAUSED' } });
    expect((await anyStatus.next()).data).toEqual({ agentStatusChanged: { agent: { name: 'Filter A' }, from: 'ACTIVE', to: 'PAUSED' } });
    expect((await anyStatus.next()).data).toEqual({ agentStatusChanged: { agent: { name: 'Newcomer' }, from: null, to: 'REGISTERED' } });

    for (const s of [byTask, byAgent, all, byStatusAgent, anyStatus]) s.unsubscribe();
  });

  it('follows a workflow run: its tasks (also as a taskUpdated filter), the steps they release, and its status', async () => {
    const w = await worker('Pipeline worker');
    const { createWorkflowDefinition } = await gqlOk<{ createWorkflowDefinition: { id: string } }>(
      platform.url,
      `mutation($input: CreateWorkflowDefinitionInput!) { createWorkflowDefinition(input: $input) { id } }`,
      {
        input: {
          name: `pipeline-${w.tag}`,
          steps: [
            { id: 'fetch', title: 'Fetch', requiredSkillTags: [w.tag] },
            { id: 'sum', title: 'Summarise', requiredSkillTags: [w.tag], dependsOn: ['fetch'] },
          ],
        },
      },
    );
    const startRun = `mutation($d: ID!) { startWorkflowRun(definitionId: $d) { id } }`;
    const other = (await gqlOk<{ startWorkflowRun: { id: string } }>(platform.url, startRun, { d: createWorkflowDefinition.id })).startWorkflowRun.id;
    const run = (await gqlOk<{ startWorkflowRun: { id: string } }>(platform.url, startRun, { d: createWorkflowDefinition.id })).startWorkflowRun.id;
    const sub = await subscribed(
      `subscription($r: ID) { workflowRunUpdated(runId: $r) { kind from to run { id status steps { stepId status } } task { title state workflowStepId agent { name } } } }`,
      { r: run },
    );
    const tasksOfRun = await subscribed(`subscription($r: ID) { taskUpdated(workflowRunId: $r) { kind to task { title progress { percent } } } }`, { r: run });

    // The other run's events come first and must not reach this subscription; canceling it also
    // cancels its task, so the claim below gets this run's.
    await gqlOk(platform.url, `mutation($id: ID!) { cancelWorkflowRun(id: $id) { id } }`, { id: other });
    const taskId = await claim(w.id, w.tag);
    expect(await sub.next()).toEqual({
      data: {
        workflowRunUpdated: {
          kind: 'TASK_UPDATED',
          from: null,
          to: null,
          run: {
            id: run,
            status: 'RUNNING',
            steps: [
              { stepId: 'fetch', status: 'RUNNING' },
              { stepId: 'sum', status: 'PENDING' },
            ],
          },
          task: { title: 'Fetch', state: 'ASSIGNED', workflowStepId: 'fetch', agent: { name: 'Pipeline worker' } },
        },
      },
    });
    expect(await tasksOfRun.next()).toEqual({ data: { taskUpdated: { kind: 'STATE_CHANGED', to: 'ASSIGNED', task: { title: 'Fetch', progress: null } } } });
    // Progress reports do not name the run: the filter reads it from the task.
    await progress(taskId, w.id, 50);
    expect((await tasksOfRun.next()).data).toEqual({
      taskUpdated: { kind: 'STATE_CHANGED', to: 'WORKING', task: { title: 'Fetch', progress: { percent: 50 } } },
    });
    expect((await tasksOfRun.next()).data).toEqual({
      taskUpdated: { kind: 'PROGRESS_REPORTED', to: null, task: { title: 'Fetch', progress: { percent: 50 } } },
    });
    expect((await sub.next()).data).toMatchObject({ workflowRunUpdated: { kind: 'TASK_UPDATED', task: { title: 'Fetch', state: 'WORKING' } } });

    await gqlOk(platform.url, `mutation($t: ID!, $a: ID!) { completeTask(taskId: $t, agentId: $a, result: { pages: 3 }) { id } }`, { t: taskId, a: w.id });
    expect((await sub.next()).data).toMatchObject({ workflowRunUpdated: { kind: 'TASK_UPDATED', task: { title: 'Fetch', state: 'COMPLETED' } } });
    // Completing "fetch" released "sum": its new task is an event of the run too.
    expect((await sub.next()).data).toMatchObject({
      workflowRunUpdated: { kind: 'TASK_UPDATED', task: { title: 'Summarise', state: 'SUBMITTED', agent: null } },
    });

    await gqlOk(platform.url, `mutation($id: ID!) { cancelWorkflowRun(id: $id) { id } }`, { id: run });
    const ending = [await sub.next(), await sub.next()].map((r) => r.data?.workflowRunUpdated);
    expect(ending).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'STATUS_CHANGED', from: 'RUNNING', to: 'CANCELED', task: null, run: expect.objectContaining({ status: 'CANCELED' }) }),
        expect.objectContaining({ kind: 'TASK_UPDATED', task: expect.objectContaining({ title: 'Summarise', state: 'CANCELED' }) }),
      ]),
    );
    sub.unsubscribe();
    tasksOfRun.unsubscribe();
  });

  it('supports variables, fragments, aliases, @include and @skip as queries do', async () => {
    const w = await worker('Directive worker');
    const taskId = await submit('Directive task', w.tag);
    const query = `
      subscription Watch($task: ID!, $withAgent: Boolean!, $skipProgress: Boolean = true) {
        update: taskUpdated(taskId: $task) { ...Event }
      }
      fragment Event on TaskEvent {
        status: to
        task {
          ... on Task { headline: title }
          agent @include(if: $withAgent) { agentName: name }
          progress @skip(if: $skipProgress) { percent }
        }
      }`;
    const withAgent = await subscribed(query, { task: taskId, withAgent: true });
    const without = await subscribed(query, { task: taskId, withAgent: false, skipProgress: false });
    await claim(w.id, w.tag);
    expect(await withAgent.next()).toEqual({
      data: { update: { status: 'ASSIGNED', task: { headline: 'Directive task', agent: { agentName: 'Directive worker' } } } },
    });
    expect(await without.next()).toEqual({ data: { update: { status: 'ASSIGNED', task: { headline: 'Directive task', progress: null } } } });
    withAgent.unsubscribe();
    without.unsubscribe();
  });

  it('refuses invalid operations with a protocol Error message before anything is subscribed', async () => {
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const cases: [string, Record<string, unknown> | undefined, string, RegExp][] = [
      ['subscription { taskUpdatedd { kind } }', undefined, 'GRAPHQL_VALIDATION_FAILED', /Cannot query field "taskUpdatedd" on type "Subscription"/],
      ['subscription { taskUpdated { kind nope } }', undefined, 'GRAPHQL_VALIDATION_FAILED', /Cannot query field "nope" on type "TaskEvent"/],
      ['subscription { taskUpdated { kind }', undefined, 'GRAPHQL_PARSE_FAILED', /Syntax Error/],
      ['subscription { taskUpdated { kind } agentHeartbeat { occurredAt } }', undefined, 'GRAPHQL_VALIDATION_FAILED', /must select only one top level field/],
      ['subscription($t: ID!) { taskUpdated(taskId: $t) { kind } }', {}, 'BAD_USER_INPUT', /Variable "\$t" of required type "ID!" was not provided/],
      ['subscription($t: ID) { taskUpdated(taskId: $t) { kind } }', { t: { not: 'an id' } }, 'BAD_USER_INPUT', /Variable "\$t" got invalid value/],
      ['subscription($s: Boolean!) { taskUpdated @skip(if: $s) { kind } }', { s: false }, 'GRAPHQL_VALIDATION_FAILED', /must not use `@skip` or `@include`/],
      [
        'subscription A { taskUpdated { kind } } subscription B { taskUpdated { kind } }',
        undefined,
        'OPERATION_RESOLUTION_FAILURE',
        /Must provide operation name/,
      ],
    ];
    for (const [query, variables, code, message] of cases) {
      const errors = await refusal(subscribe(client, { query, ...(variables ? { variables } : {}) }));
      expect(errors.length, query).toBeGreaterThan(0);
      for (const error of errors) expect(error, query).toMatchObject({ message: expect.stringMatching(message), extensions: { code } });
    }
    expect((await gatewayStats(platform.url)).upstreamSubscriptions).toBe(0);
    expect(subgraphOpenSubscriptions(platform.orchestration).opened).toBe(before);
  });

  it('passes on a bad argument as the subgraph reports it: one result with the error, then complete', async () => {
    const sub = subscribe(client, { query: `subscription { taskUpdated(taskId: "not-a-uuid") { kind } }` });
    const result = await sub.next();
    expect(result.errors).toEqual([
      expect.objectContaining({
        message: 'taskId must be a UUID, got "not-a-uuid"',
        extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', serviceName: 'orchestration' }),
      }),
    ]);
    expect(await sub.ended).toEqual({ kind: 'complete' });
  });

  it('runs queries and mutations sent over the socket through the same path as HTTP', async () => {
    const one = async (query: string, variables?: Record<string, unknown>) => {
      const sub = subscribe(client, { query, ...(variables ? { variables } : {}) });
      const result = await sub.next();
      expect(await sub.ended).toEqual({ kind: 'complete' });
      return result;
    };
    const created = await one(`mutation { registerAgent(input: { name: "Over the socket" }) { id name status } }`);
    const id = (created.data!.registerAgent as { id: string }).id;
    expect(created.data).toEqual({ registerAgent: { id, name: 'Over the socket', status: 'REGISTERED' } });
    const read = await one(`query($id: ID!) { agent(id: $id) { name activeTaskCount tasks { totalCount } } }`, { id });
    expect(read).toEqual(
      await gql(platform.url, `query($id: ID!) { agent(id: $id) { name activeTaskCount tasks { totalCount } } }`, { id }).then((r) => ({ data: r.data })),
    );
    // A repeat (the gateway's prepared-operations path once a document has run) answers the same.
    expect(await one(`query($id: ID!) { agent(id: $id) { name activeTaskCount tasks { totalCount } } }`, { id })).toEqual(read);
    const refused = await one(`mutation { pauseAgent(id: "nope") { id } }`);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    // Its repeat is handed back to Apollo Server with the computed result: the same coded error.
    expect(await one(`mutation { pauseAgent(id: "nope") { id } }`)).toEqual(refused);
  });

  it('shares one upstream subscription between identical subscribers', async () => {
    const w = await worker('Shared');
    const taskId = await submit('Shared task', w.tag);
    const query = `subscription($t: ID) { taskUpdated(taskId: $t) { to task { agent { name } } } }`;
    const clients = [wsClient(platform.url), wsClient(platform.url), wsClient(platform.url)];
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const subs = clients.map((c) => subscribe(c, { query, variables: { t: taskId } }));
    const different = subscribe(client, { query, variables: { t: randomUUID() } });
    await subgraphSubscribed(platform.orchestration, before, 2);
    expect(await gatewayStats(platform.url)).toMatchObject({ clientSubscriptions: 4, sharedStreams: 2, upstreamSubscriptions: 2 });

    await claim(w.id, w.tag);
    for (const s of subs) expect(await s.next()).toEqual({ data: { taskUpdated: { to: 'ASSIGNED', task: { agent: { name: 'Shared' } } } } });
    // Leaving one by one: the stream stays for the others and is released with the last.
    subs[0]?.unsubscribe();
    subs[1]?.unsubscribe();
    await waitFor('two left', async () => (await gatewayStats(platform.url)).clientSubscriptions === 2);
    expect((await gatewayStats(platform.url)).upstreamSubscriptions).toBe(2);
    subs[2]?.unsubscribe();
    different.unsubscribe();
    await Promise.all(clients.map((c) => c.dispose()));
  });
});

describe('GraphQL over SSE and over plain HTTP', () => {
  const streamUrl = () => platform.url.replace(/\/graphql$/, '/graphql/stream');

  it('streams subscription events over SSE (graphql-sse client, distinct connections)', async () => {
    const w = await worker('SSE worker');
    const taskId = await submit('SSE task', w.tag);
    const sse = createSseClient({ url: streamUrl(), retryAttempts: 0, headers: async () => ({ authorization: await defaultAuthorization() }) });
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const received: unknown[] = [];
    const dispose = sse.subscribe(
      { query: `subscription($t: ID) { taskUpdated(taskId: $t) { to task { title agent { name } } } }`, variables: { t: taskId } },
      { next: (r) => void received.push(r), error: (e) => void received.push({ error: String(e) }), complete: () => {} },
    );
    await subgraphSubscribed(platform.orchestration, before);
    expect((await gatewayStats(platform.url)).sseConnections).toBe(1);
    await claim(w.id, w.tag);
    await waitFor('the SSE event', () => received.length > 0);
    expect(received).toEqual([{ data: { taskUpdated: { to: 'ASSIGNED', task: { title: 'SSE task', agent: { name: 'SSE worker' } } } } }]);
    dispose();
    await waitFor('the SSE stream released', async () => {
      const stats = await gatewayStats(platform.url);
      return stats.sseConnections === 0 && stats.clientSubscriptions === 0;
    });
    sse.dispose();
  });

  it('answers an invalid SSE request with 400 and coded errors, and runs queries over SSE', async () => {
    const bad = await fetch(streamUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: await defaultAuthorization() },
      body: JSON.stringify({ query: 'subscription { taskUpdated { nope } }' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      errors: [expect.objectContaining({ message: expect.stringMatching(/Cannot query field "nope"/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })],
    });

    const malformed = await fetch(streamUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: await defaultAuthorization() },
      body: '{"query": 5}',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ errors: [expect.objectContaining({ extensions: { code: 'BAD_REQUEST' } })] });

    const query = await fetch(streamUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: await defaultAuthorization() },
      body: JSON.stringify({ query: '{ agents(first: 1) { totalCount } }' }),
    });
    const text = await query.text();
    expect(text).toMatch(/event: next\ndata: \{"data":\{"agents":\{"totalCount":\d+\}\}\}/);
    expect(text).toMatch(/event: complete/);
  });

  it('tells a client that sends a subscription as a plain HTTP request where to go', async () => {
    const result = await gql(platform.url, 'subscription { taskUpdated { kind } }');
    expect(result.status).toBe(400);
    expect(result.errors).toEqual([
      {
        message: expect.stringMatching(
          /^Subscriptions are not served over plain HTTP requests: subscribe over graphql-ws .* or over SSE at \/graphql\/stream$/,
        ),
        extensions: { code: 'BAD_REQUEST' },
      },
    ]);
  });
});
