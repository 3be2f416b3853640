// The orchestration subgraph as a client sees it: started in-process exactly as
// `npm run subgraph -- orchestration` starts it, with a real agents subgraph beside it (asked
// about the agent at each claim; both on one in-process bus, as under `npm start`), and spoken
// to over HTTP.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus } from '../../runtime/events.ts';
import type { IdentityClaims } from '../../runtime/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents as agentsSubgraph } from '../../subgraphs/agents/index.ts';
import { orchestration } from '../../subgraphs/orchestration/index.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';

interface GraphQLResponse {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

interface Instance {
  running: RunningSubgraph;
  agents: RunningSubgraph;
  close(): Promise<void>;
}

/**
 * An orchestration subgraph and the agents subgraph it asks, each on a private database (a temp
 * SQLite directory or a PostgreSQL schema), sharing one in-process event bus.
 */
async function startInstance(sweepIntervalMs: number): Promise<Instance> {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchestration-http-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : undefined;
  const bus = createEventBus({ redisUrl: undefined, channelPrefix: 'test', logger: createLogger('test-bus', 'silent') });
  const common = {
    ...process.env,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ...TEST_SECURITY_ENV,
    ...(schemaPrefix ? { DATABASE_SCHEMA_PREFIX: schemaPrefix } : {}),
  };
  const agents = await startSubgraph(agentsSubgraph, { ...common, AGENTS_PORT: '0' }, { bus });
  const started = await startSubgraph(
    orchestration,
    {
      ...common,
      ORCHESTRATION_PORT: '0',
      LEASE_SWEEP_INTERVAL_MS: String(sweepIntervalMs),
      // The outbox relay is background work too: as quiet as the sweeper.
      OUTBOX_RELAY_INTERVAL_MS: String(sweepIntervalMs),
      SUBGRAPH_AGENTS_URL: agents.url,
    },
    { bus },
  );
  return {
    running: started,
    agents,
    async close() {
      await started.stop();
      await agents.stop();
      await bus.close();
      rmSync(dataDir, { recursive: true, force: true });
      if (schemaPrefix) {
        await dropSchema(`${schemaPrefix}orchestration`);
        await dropSchema(`${schemaPrefix}agents`);
      }
    },
  };
}

let instance: Instance;
let running: RunningSubgraph;

beforeAll(async () => {
  instance = await startInstance(100);
  running = instance.running;
});

afterAll(async () => {
  await instance?.close();
});

async function post(body: string, target: RunningSubgraph = running, as: Partial<IdentityClaims> = {}): Promise<{ status: number; json: GraphQLResponse }> {
  // Signed as the gateway signs an admin of the default tenant (every scope, tasks:delegate too), unless told otherwise.
  const res = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...(await identityHeaders(target.name, as)) }, body });
  return { status: res.status, json: (await res.json()) as GraphQLResponse };
}

/** An agent registered with these skill tags in the agents subgraph beside `target`, and activated. */
async function activeAgent(tags: string[], target: Instance = instance): Promise<string> {
  const { registerAgent } = await gql<{ registerAgent: { id: string } }>(
    `mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }`,
    { input: { name: `agent-${tags.join('-') || 'untagged'}`, skills: [{ id: 'work', name: 'Work', tags }] } },
    target.agents,
  );
  await agentStatus(registerAgent.id, 'activate', target);
  return registerAgent.id;
}

async function agentStatus(id: string, action: 'activate' | 'pause' | 'resume' | 'retire', target: Instance = instance): Promise<void> {
  await gql(`mutation($id: ID!) { ${action}Agent(id: $id) { id } }`, { id }, target.agents);
}

async function gql<T = Record<string, unknown>>(
  query: string,
  variables: Record<string, unknown> = {},
  target: RunningSubgraph = running,
  as: Partial<IdentityClaims> = {},
): Promise<T> {
  const { status, json } = await post(JSON.stringify({ query, variables }), target, as);
  if (json.errors) throw new Error(`unexpected errors (HTTP ${status}): ${JSON.stringify(json.errors)}`);
  return json.data as T;
}

/** The single error of a request expected to fail, checked to carry a code and no stack trace. */
async function gqlError(query: string, variables: Record<string, unknown> = {}, as: Partial<IdentityClaims> = {}) {
  const { json } = await post(JSON.stringify({ query, variables }), running, as);
  expect(json.errors, JSON.stringify(json)).toHaveLength(1);
  const error = json.errors![0]!;
  expect(error.extensions?.code).toEqual(expect.any(String));
  expect(error.extensions).not.toHaveProperty('stacktrace');
  expect(error.extensions).not.toHaveProperty('exception');
  return error;
}

const TASK_FIELDS = `id state attempts title input priority requiredSkillTags timeoutSeconds version
  retryPolicy { initialIntervalSeconds backoffCoefficient maximumIntervalSeconds maximumAttempts }
  progress { percent message updatedAt } result error { message type details }
  agent { id } leaseExpiresAt availableAt startedAt finishedAt workflowStepId workflowRun { id }`;

interface TaskJson {
  id: string;
  state: string;
  attempts: number;
  agent: { id: string } | null;
  leaseExpiresAt: string | null;
  availableAt: string;
  error: { message: string; type: string | null } | null;
  [key: string]: unknown;
}

const submit = async (input: Record<string, unknown>) =>
  (await gql<{ submitTask: TaskJson }>(`mutation($input: SubmitTaskInput!) { submitTask(input: $input) { ${TASK_FIELDS} } }`, { input })).submitTask;
const CLAIM = `mutation($a: ID, $t: [String!], $l: Int) { claimTask(agentId: $a, skillTags: $t, leaseSeconds: $l) { ${TASK_FIELDS} } }`;
/** A claim by a delegate (the test admin, who holds tasks:delegate) for the named agent. */
const claim = async (agentId: string, skillTags: string[] | null, leaseSeconds = 60) =>
  (await gql<{ claimTask: TaskJson | null }>(CLAIM, { a: agentId, t: skillTags, l: leaseSeconds })).claimTask;
const getTask = async (id: string) => (await gql<{ task: TaskJson | null }>(`query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`, { id })).task;
const taskCount = async () => (await gql<{ tasks: { totalCount: number } }>('{ tasks { totalCount } }')).tasks.totalCount;
const definitionCount = async () =>
  (await gql<{ workflowDefinitions: { totalCount: number } }>('{ workflowDefinitions { totalCount } }')).workflowDefinitions.totalCount;

describe('orchestration subgraph over HTTP', () => {
  it('answers health and readiness probes', async () => {
    expect((await fetch(running.url.replace('/graphql', '/healthz'))).status).toBe(200);
    expect((await fetch(running.url.replace('/graphql', '/readyz'))).status).toBe(200);
  });

  it('runs a task from submit through claim and progress to completion', async () => {
    const tag = `http-${randomUUID()}`;
    const submitted = await submit({ title: 'Summarise report', input: { doc: 'q3.pdf' }, requiredSkillTags: [tag], priority: 3 });
    expect(submitted).toMatchObject({
      state: 'SUBMITTED',
      attempts: 0,
      agent: null,
      input: { doc: 'q3.pdf' },
      requiredSkillTags: [tag],
      timeoutSeconds: 300,
      retryPolicy: { initialIntervalSeconds: 1, backoffCoefficient: 2, maximumIntervalSeconds: 100, maximumAttempts: 3 },
      workflowRun: null,
    });

    const agentId = await activeAgent([tag, 'other', 'unrelated']);
    expect(await claim(agentId, ['unrelated'])).toBeNull();
    const claimed = await claim(agentId, [tag, 'other'], 30);
    expect(claimed).toMatchObject({ id: submitted.id, state: 'ASSIGNED', attempts: 1, agent: { id: agentId } });
    expect(Date.parse(claimed!.leaseExpiresAt!) - Date.now()).toBeGreaterThan(20_000);

    const progressed = await gql<{ reportTaskProgress: TaskJson }>(
      `mutation($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 60, message: "reading") { ${TASK_FIELDS} } }`,
      { t: submitted.id, a: agentId },
    );
    expect(progressed.reportTaskProgress).toMatchObject({ state: 'WORKING', progress: { percent: 60, message: 'reading' } });

    // The agents subgraph owns Agent; the gateway asks this one for the work an agent holds.
    const entities = await gql<{ _entities: { id: string; activeTaskCount: number; tasks: { totalCount: number; nodes: { id: string }[] } }[] }>(
      `query($r: [_Any!]!) { _entities(representations: $r) { ... on Agent { id activeTaskCount tasks { totalCount nodes { id } } } } }`,
      { r: [{ __typename: 'Agent', id: agentId }] },
    );
    expect(entities._entities).toEqual([{ id: agentId, activeTaskCount: 1, tasks: { totalCount: 1, nodes: [{ id: submitted.id }] } }]);

    const done = await gql<{ completeTask: TaskJson }>(
      `mutation($t: ID!, $a: ID!, $r: JSON) { completeTask(taskId: $t, agentId: $a, result: $r) { ${TASK_FIELDS} } }`,
      { t: submitted.id, a: agentId, r: { summary: 'fine' } },
    );
    expect(done.completeTask).toMatchObject({ state: 'COMPLETED', result: { summary: 'fine' }, leaseExpiresAt: null, agent: { id: agentId } });
    expect(done.completeTask.finishedAt).toEqual(expect.any(String));
    expect((await getTask(submitted.id))?.state).toBe('COMPLETED');
  });

  it('requeues a task whose lease expired, through the running sweeper', async () => {
    const tag = `lease-${randomUUID()}`;
    const submitted = await submit({ title: 'Short lease', requiredSkillTags: [tag], retryPolicy: { initialIntervalSeconds: 30 } });
    const agentId = await activeAgent([tag]);
    const claimed = await claim(agentId, [tag], 5);
    expect(claimed?.state).toBe('ASSIGNED');

    const deadline = Date.now() + 20_000;
    let task = await getTask(submitted.id);
    while (task?.state !== 'SUBMITTED' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      task = await getTask(submitted.id);
    }
    expect(task).toMatchObject({ state: 'SUBMITTED', attempts: 1, leaseExpiresAt: null, agent: { id: agentId }, error: { type: 'LEASE_EXPIRED' } });
    // Not claimable again until the 30 s backoff has passed.
    expect(Date.parse(task!.availableAt)).toBeGreaterThan(Date.now() + 20_000);
    expect(await claim(agentId, [tag], 5)).toBeNull();
  });

  it('runs a workflow, resolving its steps, tasks and definition', async () => {
    const tag = `wf-${randomUUID()}`;
    const created = await gql<{ createWorkflowDefinition: { id: string; name: string; version: number; steps: { id: string; dependsOn: string[] }[] } }>(
      `mutation($input: CreateWorkflowDefinitionInput!) { createWorkflowDefinition(input: $input) { id name version steps { id dependsOn retryPolicy { maximumAttempts } } } }`,
      {
        input: {
          name: `chain-${tag}`,
          steps: [
            { id: 'fetch', title: 'Fetch', requiredSkillTags: [tag] },
            { id: 'summarise', title: 'Summarise', requiredSkillTags: [tag], dependsOn: ['fetch'], input: { words: 100 } },
          ],
        },
      },
    );
    const def = created.createWorkflowDefinition;
    expect(def).toMatchObject({
      version: 1,
      steps: [
        { id: 'fetch', dependsOn: [] },
        { id: 'summarise', dependsOn: ['fetch'] },
      ],
    });

    const RUN_FIELDS = 'id status finishedAt definition { id name } steps { stepId status task { id state input } } tasks { id workflowStepId }';
    const started = await gql<{ startWorkflowRun: { id: string; status: string; steps: { stepId: string; status: string; task: { id: string } | null }[] } }>(
      `mutation($d: ID!) { startWorkflowRun(definitionId: $d, input: { url: "https://example.com" }) { ${RUN_FIELDS} } }`,
      { d: def.id },
    );
    const run = started.startWorkflowRun;
    expect(run.status).toBe('RUNNING');
    expect(run.steps.map((s) => [s.stepId, s.status])).toEqual([
      ['fetch', 'RUNNING'],
      ['summarise', 'PENDING'],
    ]);

    const agentId = await activeAgent([tag]);
    for (const [stepId, result] of [
      ['fetch', 'page text'],
      ['summarise', 'short text'],
    ] as const) {
      const task = await claim(agentId, [tag]);
      expect(task).toMatchObject({ workflowStepId: stepId, workflowRun: { id: run.id } });
      await gql(`mutation($t: ID!, $a: ID!, $r: JSON) { completeTask(taskId: $t, agentId: $a, result: $r) { id } }`, { t: task!.id, a: agentId, r: result });
    }

    const finished = await gql<{
      workflowRun: {
        status: string;
        finishedAt: string | null;
        definition: { id: string };
        steps: { stepId: string; status: string; task: { input: unknown } }[];
        tasks: unknown[];
      };
    }>(`query($id: ID!) { workflowRun(id: $id) { ${RUN_FIELDS} } }`, { id: run.id });
    expect(finished.workflowRun).toMatchObject({ status: 'SUCCEEDED', definition: { id: def.id } });
    expect(finished.workflowRun.finishedAt).toEqual(expect.any(String));
    expect(finished.workflowRun.steps.map((s) => s.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(finished.workflowRun.steps[1]?.task.input).toEqual({ words: 100, workflowInput: { url: 'https://example.com' }, upstream: { fetch: 'page text' } });
    expect(finished.workflowRun.tasks).toHaveLength(2);

    const runs = await gql<{ workflowRuns: { nodes: { id: string }[] } }>(
      `query($d: ID!) { workflowRuns(filter: { definitionId: $d, status: SUCCEEDED }) { nodes { id } } }`,
      {
        d: def.id,
      },
    );
    expect(runs.workflowRuns.nodes).toEqual([{ id: run.id }]);
  });

  describe('on an instance whose sweeper never runs during the test', () => {
    // The statement counter is per database: a sweep tick in the middle would be counted too.
    let quiet: Instance;
    beforeAll(async () => {
      quiet = await startInstance(3_600_000);
    });
    afterAll(async () => {
      await quiet?.close();
    });

    it('resolves tasks and activeTaskCount for 50 Agent representations in a constant number of statements', async () => {
      const target = quiet.running;
      const agents = [await activeAgent([], quiet), await activeAgent([], quiet), ...Array.from({ length: 48 }, () => randomUUID())];
      const submitted: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { submitTask } = await gql<{ submitTask: { id: string } }>(
          `mutation($t: String!) { submitTask(input: { title: $t }) { id } }`,
          { t: `Batch ${i}` },
          target,
        );
        submitted.push(submitTask.id);
      }
      // Claims take the oldest first: agent 0 holds tasks 0-2, agent 1 task 3, the other 48 none.
      for (const [a, expected] of [
        [0, 0],
        [0, 1],
        [0, 2],
        [1, 3],
      ] as const) {
        const { claimTask } = await gql<{ claimTask: { id: string } | null }>(`mutation($a: ID!) { claimTask(agentId: $a) { id } }`, { a: agents[a] }, target);
        expect(claimTask?.id).toBe(submitted[expected]);
      }

      await target.settleEvents();
      const before = target.database.stats.queries;
      const result = await gql<{ _entities: { id: string; activeTaskCount: number; tasks: { totalCount: number; nodes: { id: string }[] } }[] }>(
        `query($r: [_Any!]!) { _entities(representations: $r) { ... on Agent { id tasks(first: 2) { totalCount nodes { id } } activeTaskCount } } }`,
        { r: agents.map((id) => ({ __typename: 'Agent', id })) },
        target,
      );
      const statements = target.database.stats.queries - before;

      expect(result._entities).toHaveLength(50);
      // Newest first, cut at first: 2.
      expect(result._entities[0]).toEqual({ id: agents[0], activeTaskCount: 3, tasks: { totalCount: 3, nodes: [{ id: submitted[2] }, { id: submitted[1] }] } });
      expect(result._entities[1]).toEqual({ id: agents[1], activeTaskCount: 1, tasks: { totalCount: 1, nodes: [{ id: submitted[3] }] } });
      expect(result._entities.slice(2)).toEqual(agents.slice(2).map((id) => ({ id, activeTaskCount: 0, tasks: { totalCount: 0, nodes: [] } })));
      // One page query and one count for the tasks of all 50 agents, one grouped active count.
      expect(statements).toBeLessThanOrEqual(3);
    });
  });

  describe('who acts for which agent', () => {
    /** An agent's own credential: it acts as this agent and only this one. */
    const asAgent = (agentId: string): Partial<IdentityClaims> => ({
      kind: 'apiKey',
      subject: `apikey:${agentId.slice(0, 8)}`,
      scopes: ['agents:read', 'tasks:read', 'tasks:write'],
      agentId,
    });
    const HISTORY = 'history { kind from to actor onBehalfOf message }';
    const fresh = () => `who-${randomUUID()}`;

    it('lets an agent claim, report and complete as itself without naming itself, and records it', async () => {
      const tag = fresh();
      const agentId = await activeAgent([tag]);
      const task = await submit({ title: 'Own work', requiredSkillTags: [tag] });
      const me = asAgent(agentId);
      const { claimTask } = await gql<{ claimTask: TaskJson | null }>(`mutation { claimTask(leaseSeconds: 30) { ${TASK_FIELDS} } }`, {}, running, me);
      expect(claimTask).toMatchObject({ id: task.id, state: 'ASSIGNED', agent: { id: agentId } });
      await gql(`mutation($t: ID!) { reportTaskProgress(taskId: $t, percent: 50) { id } }`, { t: task.id }, running, me);
      // Naming itself is fine too.
      await gql(`mutation($t: ID!, $a: ID) { completeTask(taskId: $t, agentId: $a, result: 1) { id } }`, { t: task.id, a: agentId }, running, me);
      const { task: done } = await gql<{ task: { state: string; history: { kind: string; actor: string; onBehalfOf: string | null }[] } }>(
        `query($id: ID!) { task(id: $id) { state ${HISTORY} } }`,
        { id: task.id },
      );
      expect(done.state).toBe('COMPLETED');
      expect(done.history.map((h) => [h.kind, h.actor, h.onBehalfOf])).toEqual([
        ['SUBMITTED', 'test-admin', null],
        ['CLAIMED', me.subject, agentId],
        ['STARTED', me.subject, agentId],
        ['COMPLETED', me.subject, agentId],
      ]);
    });

    it('refuses an agent naming another agent with AGENT_MISMATCH, and changes nothing', async () => {
      const tag = fresh();
      const [mine, theirs] = [await activeAgent([tag]), await activeAgent([tag])];
      const task = await submit({ title: 'Not yours', requiredSkillTags: [tag] });
      const err = await gqlError(`mutation($a: ID) { claimTask(agentId: $a) { id } }`, { a: theirs }, asAgent(mine));
      expect(err.extensions).toMatchObject({ code: 'AGENT_MISMATCH', agentId: mine, requestedAgentId: theirs });
      expect(await getTask(task.id)).toMatchObject({ state: 'SUBMITTED', version: 1 });

      await claim(theirs, [tag]);
      const complete = await gqlError(`mutation($t: ID!, $a: ID) { completeTask(taskId: $t, agentId: $a) { id } }`, { t: task.id, a: theirs }, asAgent(mine));
      expect(complete.extensions?.code).toBe('AGENT_MISMATCH');
      // Acting as itself on a task it does not hold is the old CONFLICT.
      expect((await gqlError(`mutation($t: ID!) { completeTask(taskId: $t) { id } }`, { t: task.id }, asAgent(mine))).extensions?.code).toBe('CONFLICT');
      expect(await getTask(task.id)).toMatchObject({ state: 'ASSIGNED', agent: { id: theirs } });
    });

    it('lets a caller that is not an agent act for a named agent only with tasks:delegate', async () => {
      const tag = fresh();
      const agentId = await activeAgent([tag]);
      const task = await submit({ title: 'Delegated', requiredSkillTags: [tag] });
      const operator = { kind: 'user' as const, subject: 'operator@example.com', scopes: ['tasks:read', 'tasks:write'] };
      const forbidden = await gqlError(`mutation($a: ID) { claimTask(agentId: $a) { id } }`, { a: agentId }, operator);
      expect(forbidden.extensions).toMatchObject({ code: 'DELEGATION_FORBIDDEN', agentId });
      const required = await gqlError(`mutation { claimTask { id } }`, {}, { ...operator, scopes: [...operator.scopes, 'tasks:delegate'] });
      expect(required.extensions).toMatchObject({ code: 'AGENT_REQUIRED', argument: 'agentId' });
      expect(await getTask(task.id)).toMatchObject({ state: 'SUBMITTED', version: 1 });

      const delegate = { ...operator, scopes: [...operator.scopes, 'tasks:delegate'] };
      const { claimTask } = await gql<{ claimTask: { id: string; history: { kind: string; actor: string; onBehalfOf: string }[] } }>(
        `mutation($a: ID) { claimTask(agentId: $a) { id ${HISTORY} } }`,
        { a: agentId },
        running,
        delegate,
      );
      expect(claimTask.id).toBe(task.id);
      expect(claimTask.history.at(-1)).toMatchObject({ kind: 'CLAIMED', actor: 'operator@example.com', onBehalfOf: agentId });
    });

    it('refuses an unknown agent with AGENT_NOT_FOUND, one error and no task handed out', async () => {
      const tag = fresh();
      const task = await submit({ title: 'For nobody', requiredSkillTags: [] });
      const ghost = randomUUID();
      const { json } = await post(JSON.stringify({ query: `mutation($a: ID) { claimTask(agentId: $a) { id agent { id } } }`, variables: { a: ghost } }));
      expect(json.errors).toHaveLength(1);
      expect(json.errors?.[0]?.extensions).toMatchObject({ code: 'AGENT_NOT_FOUND', agentId: ghost });
      expect(json.data).toEqual({ claimTask: null });
      expect(await getTask(task.id)).toMatchObject({ state: 'SUBMITTED', agent: null, version: 1 });
      // Another tenant's agent is as unknown as one that never existed.
      const agentId = await activeAgent([tag]);
      const elsewhere = await gqlError(`mutation($a: ID) { claimTask(agentId: $a) { id } }`, { a: agentId }, { tenantId: 'other-tenant' });
      expect(elsewhere.extensions?.code).toBe('AGENT_NOT_FOUND');
      await gql(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id: task.id });
    });

    it('refuses a PAUSED agent new work with AGENT_NOT_ACTIVE but lets it finish what it holds; resumed, it claims again', async () => {
      const tag = fresh();
      const agentId = await activeAgent([tag]);
      const [held, next] = [await submit({ title: 'Held', requiredSkillTags: [tag], priority: 5 }), await submit({ title: 'Next', requiredSkillTags: [tag] })];
      expect((await claim(agentId, [tag]))?.id).toBe(held.id);
      await agentStatus(agentId, 'pause');
      const paused = await gqlError(CLAIM, { a: agentId, t: [tag] });
      expect(paused.extensions).toMatchObject({ code: 'AGENT_NOT_ACTIVE', status: 'PAUSED', agentId });
      expect(await getTask(next.id)).toMatchObject({ state: 'SUBMITTED', version: 1 });
      // Held work goes on while paused.
      await gql(`mutation($t: ID!) { reportTaskProgress(taskId: $t, percent: 90) { id } }`, { t: held.id }, running, asAgent(agentId));
      await gql(`mutation($t: ID!) { completeTask(taskId: $t) { id } }`, { t: held.id }, running, asAgent(agentId));
      expect((await getTask(held.id))?.state).toBe('COMPLETED');

      await agentStatus(agentId, 'resume');
      expect((await claim(agentId, [tag]))?.id).toBe(next.id);
      // Registered but never activated: not ACTIVE either.
      const { registerAgent } = await gql<{ registerAgent: { id: string } }>(
        `mutation { registerAgent(input: { name: "new", skills: [{ id: "w", name: "W", tags: ["x"] }] }) { id } }`,
        {},
        instance.agents,
      );
      expect((await gqlError(CLAIM, { a: registerAgent.id })).extensions).toMatchObject({ code: 'AGENT_NOT_ACTIVE', status: 'REGISTERED' });
    });

    it("releases a RETIRED agent's held tasks for another agent, with a history entry, and refuses its claims", async () => {
      const tag = fresh();
      const [retiring, other] = [await activeAgent([tag]), await activeAgent([tag])];
      const [a, b] = [await submit({ title: 'A', requiredSkillTags: [tag], priority: 2 }), await submit({ title: 'B', requiredSkillTags: [tag], priority: 1 })];
      await claim(retiring, [tag]);
      await claim(retiring, [tag]);
      // One waits for input, one is merely ASSIGNED: both are released.
      await gql(`mutation($t: ID!) { reportTaskProgress(taskId: $t, percent: 10) { id } }`, { t: a.id }, running, asAgent(retiring));
      await gql(`mutation($t: ID!) { requestTaskInput(taskId: $t, message: "which?") { state } }`, { t: a.id }, running, asAgent(retiring));
      await agentStatus(retiring, 'retire');

      // The release follows the agents subgraph's event: wait for it without a time limit of our own.
      let tasks = [await getTask(a.id), await getTask(b.id)];
      while (tasks.some((t) => t?.state !== 'SUBMITTED')) {
        await new Promise((r) => setTimeout(r, 50));
        tasks = [await getTask(a.id), await getTask(b.id)];
      }
      expect(tasks.map((t) => [t?.state, t?.attempts, t?.leaseExpiresAt])).toEqual([
        ['SUBMITTED', 0, null],
        ['SUBMITTED', 0, null],
      ]);
      const historyOf = async (id: string) =>
        (
          await gql<{ task: { history: { kind: string; from: string; actor: string; message: string }[] } }>(
            `query($id: ID!) { task(id: $id) { ${HISTORY} } }`,
            { id },
          )
        ).task.history;
      expect((await historyOf(a.id)).at(-1)).toMatchObject({ kind: 'RELEASED', from: 'INPUT_REQUIRED', actor: 'system:agent-retirement' });
      expect((await historyOf(b.id)).at(-1)).toMatchObject({
        kind: 'RELEASED',
        from: 'ASSIGNED',
        actor: 'system:agent-retirement',
        message: `agent "${retiring}" was retired`,
      });

      expect((await gqlError(CLAIM, { a: retiring })).extensions).toMatchObject({ code: 'AGENT_NOT_ACTIVE', status: 'RETIRED' });
      expect((await claim(other, [tag]))?.id).toBe(a.id);
      expect((await claim(other, [tag]))?.id).toBe(b.id);
    });

    it('matches tasks against the registered skill tags: omitted means all, narrowed takes fewer, widened is refused', async () => {
      const [pdf, ocr] = [fresh(), fresh()];
      const agentId = await activeAgent([pdf, ocr]);
      const both = await submit({ title: 'Both', requiredSkillTags: [pdf, ocr], priority: 9 });
      const onlyPdf = await submit({ title: 'Pdf', requiredSkillTags: [pdf] });

      const widened = await gqlError(CLAIM, { a: agentId, t: [pdf, 'legal-advice'] });
      expect(widened.extensions).toMatchObject({ code: 'SKILLS_NOT_REGISTERED', unregisteredTags: ['legal-advice'] });
      expect(widened.message).toContain('"legal-advice"');
      expect(await getTask(both.id)).toMatchObject({ state: 'SUBMITTED', version: 1 });

      // Narrowed to pdf: the higher-priority task needing ocr as well is left alone.
      expect((await claim(agentId, [pdf]))?.id).toBe(onlyPdf.id);
      // Omitted: every registered tag.
      expect((await claim(agentId, null))?.id).toBe(both.id);
    });

    it('answers DEPENDENCY_UNAVAILABLE when the agents subgraph cannot be reached, and hands out nothing', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'orchestration-noagents-'));
      const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : undefined;
      const lonely = await startSubgraph(orchestration, {
        ...process.env,
        ORCHESTRATION_PORT: '0',
        DATA_DIR: dataDir,
        LOG_LEVEL: 'silent',
        ...TEST_SECURITY_ENV,
        // Port 9 (discard) on loopback: nothing listens there.
        SUBGRAPH_AGENTS_URL: 'http://127.0.0.1:9/graphql',
        ...(schemaPrefix ? { DATABASE_SCHEMA_PREFIX: schemaPrefix } : {}),
      });
      try {
        const { submitTask } = await gql<{ submitTask: { id: string } }>(`mutation { submitTask(input: { title: "waiting" }) { id } }`, {}, lonely);
        const { json } = await post(JSON.stringify({ query: CLAIM, variables: { a: randomUUID() } }), lonely);
        expect(json.errors?.[0]?.extensions).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'agents' });
        const { task } = await gql<{ task: { state: string } }>(`query($id: ID!) { task(id: $id) { state } }`, { id: submitTask.id }, lonely);
        expect(task.state).toBe('SUBMITTED');
      } finally {
        await lonely.stop();
        rmSync(dataDir, { recursive: true, force: true });
        if (schemaPrefix) await dropSchema(`${schemaPrefix}orchestration`);
      }
    });
  });

  describe('errors', () => {
    it('rejects ids that are not UUIDs with BAD_USER_INPUT, and unknown ids with null or NOT_FOUND', async () => {
      expect((await gqlError('{ task(id: "nope") { id } }')).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'id' });
      expect((await gqlError('mutation { cancelTask(id: "1; drop table tasks") { id } }')).extensions?.code).toBe('BAD_USER_INPUT');
      expect((await gqlError(`mutation { claimTask(agentId: "agent-7", skillTags: []) { id } }`)).extensions).toMatchObject({ argument: 'agentId' });
      expect(await getTask(randomUUID())).toBeNull();
      expect(await gql(`query($id: ID!) { workflowRun(id: $id) { id } }`, { id: randomUUID() })).toEqual({ workflowRun: null });
      const missing = randomUUID();
      expect((await gqlError(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id: missing })).extensions).toMatchObject({
        code: 'NOT_FOUND',
        id: missing,
      });
      expect((await gqlError(`mutation($id: ID!) { startWorkflowRun(definitionId: $id) { id } }`, { id: missing })).extensions?.code).toBe('NOT_FOUND');
    });

    it('rejects bad page arguments of Agent.tasks with BAD_USER_INPUT', async () => {
      const agentTasks = (args: string) =>
        gqlError(`query($r: [_Any!]!) { _entities(representations: $r) { ... on Agent { tasks(${args}) { totalCount } } } }`, {
          r: [{ __typename: 'Agent', id: randomUUID() }],
        });
      expect((await agentTasks('first: 0')).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
      expect((await agentTasks('first: 101')).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
      expect((await agentTasks('after: "not-a-cursor"')).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'after' });
    });

    it('rejects illegal transitions with CONFLICT and leaves the task as it was', async () => {
      const task = await submit({ title: 'Not yet claimed', requiredSkillTags: [`never-${randomUUID()}`] });
      const err = await gqlError(`mutation($t: ID!, $a: ID!) { completeTask(taskId: $t, agentId: $a) { id } }`, { t: task.id, a: randomUUID() });
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'SUBMITTED', to: 'COMPLETED' });
      expect(await getTask(task.id)).toMatchObject({ state: 'SUBMITTED', version: 1 });

      await gql(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id: task.id });
      const again = await gqlError(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id: task.id });
      expect(again.extensions).toMatchObject({ code: 'CONFLICT', from: 'CANCELED', to: 'CANCELED' });
      expect(await getTask(task.id)).toMatchObject({ state: 'CANCELED', version: 2 });
    });

    it('rejects invalid DAGs naming the step, and stores nothing', async () => {
      const before = await definitionCount();
      const create = (steps: unknown[]) =>
        gqlError(`mutation($input: CreateWorkflowDefinitionInput!) { createWorkflowDefinition(input: $input) { id } }`, { input: { name: 'bad', steps } });
      const cycle = await create([
        { id: 'a', title: 'A', dependsOn: ['b'] },
        { id: 'b', title: 'B', dependsOn: ['a'] },
      ]);
      expect(cycle.extensions?.code).toBe('BAD_USER_INPUT');
      expect(cycle.message).toMatch(/cycle/);
      expect(['a', 'b']).toContain(cycle.extensions?.step);
      expect((await create([{ id: 'a', title: 'A', dependsOn: ['ghost'] }])).extensions).toMatchObject({ code: 'BAD_USER_INPUT', step: 'a' });
      expect(
        (
          await create([
            { id: 'a', title: 'A' },
            { id: 'a', title: 'A again' },
          ])
        ).extensions,
      ).toMatchObject({ code: 'BAD_USER_INPUT', step: 'a' });
      expect((await create([])).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'steps' });
      expect(await definitionCount()).toBe(before);
    });

    it('rejects malformed input with BAD_USER_INPUT (or a 400 for a broken body), and stores nothing', async () => {
      const before = await taskCount();
      const submitError = (input: Record<string, unknown>) => gqlError(`mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }`, { input });
      expect((await submitError({ title: '' })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'title' });
      expect((await submitError({ title: 'x'.repeat(201) })).extensions).toMatchObject({ field: 'title' });
      expect((await submitError({ title: 'x', priority: 5000 })).extensions).toMatchObject({ field: 'priority' });
      expect((await submitError({ title: 'x', timeoutSeconds: 0 })).extensions).toMatchObject({ field: 'timeoutSeconds' });
      expect((await submitError({ title: 'x', retryPolicy: { backoffCoefficient: 0.5 } })).extensions).toMatchObject({
        field: 'retryPolicy.backoffCoefficient',
      });
      expect((await submitError({ title: 'x', input: { blob: 'x'.repeat(300 * 1024) } })).extensions).toMatchObject({ field: 'input' });
      // A variable of the wrong type never reaches a resolver.
      expect((await submitError({ title: 'x', priority: 'high' })).extensions?.code).toBe('BAD_USER_INPUT');
      const claimError = await gqlError(`mutation($a: ID!) { claimTask(agentId: $a, skillTags: [], leaseSeconds: 1) { id } }`, { a: randomUUID() });
      // Bad input is refused before the agents subgraph is asked: an unknown agent is not what is reported.
      expect(claimError.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'leaseSeconds' });
      const progressError = await gqlError(`mutation($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 101) { id } }`, {
        t: randomUUID(),
        a: randomUUID(),
      });
      expect(progressError.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'percent' });

      const broken = await post('{"query": "mutation { submitTask(input: {title: \\"x\\"}) { id } }"');
      expect(broken.status).toBe(400);
      expect(broken.json.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
      expect(await taskCount()).toBe(before);
    });
  });
});
