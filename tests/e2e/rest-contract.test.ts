// The REST facade against its own OpenAPI document, with every service a real process: each route
// is called with valid input and its answer checked against the schema the document declares;
// each is called with invalid input and must answer 400 problem+json naming the bad value; the
// 404 and 409 paths, REST/GraphQL equality, and the status codes of the transport itself.
import { defaultAuthorization } from '../support/auth.ts';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { gqlOk, manageProcesses, REPO_ROOT, startPlatform, supergraphSubgraphs, type Platform } from '../support/processes.ts';
import { asProblem, DocumentChecker, rest, type OpenApiDoc, type RestRequest, type RestResponse } from '../rest/client.ts';
import { agentsClient, ApiError } from '../rest/example-client.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let base: string;
let checker: DocumentChecker;
/** operationId → how often it answered with its documented success status. */
const exercised = new Map<string, number>();

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-rest-'));
  platform = await startPlatform({ dataDir, with: supergraphSubgraphs, gatewayEnv: { MAX_BODY_BYTES: '65536' } });
  base = platform.url.replace(/\/graphql$/, '');
  const res = await rest(base, 'GET', '/openapi.json');
  expect(res.status).toBe(200);
  checker = new DocumentChecker(res.body as OpenApiDoc);
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Calls the operation's route with valid input; fails unless the answer conforms to the document. */
async function call(operationId: string, params: Record<string, string> = {}, request: RestRequest = {}): Promise<RestResponse> {
  const { method, path } = checker.operation(operationId);
  const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(params[name] ?? ''));
  const res = await rest(base, method, url, request);
  const problems = checker.check(operationId, res);
  expect(problems, `${operationId} ${res.status}: ${res.text.slice(0, 500)}`).toEqual([]);
  return res;
}

async function ok<T = Record<string, unknown>>(operationId: string, params: Record<string, string> = {}, request: RestRequest = {}): Promise<T> {
  const res = await call(operationId, params, request);
  const success = Object.keys(checker.operation(operationId).operation.responses).find((s) => /^20[0-2]$/.test(s));
  expect(String(res.status), res.text.slice(0, 500)).toBe(success);
  exercised.set(operationId, (exercised.get(operationId) ?? 0) + 1);
  return res.body as T;
}

async function problemOf(operationId: string, params: Record<string, string>, request: RestRequest, status: number, code: string) {
  const res = await call(operationId, params, request);
  expect(res.status, res.text).toBe(status);
  const problem = asProblem(res);
  expect(problem).toMatchObject({ type: 'about:blank', status, code });
  expect(problem.requestId).toBe(res.headers.get('x-request-id'));
  return problem;
}

interface Agent {
  id: string;
  name: string;
  status: string;
  version: number;
  lastHeartbeatAt: string | null;
  labels: { key: string; value: string }[];
}
interface Task {
  id: string;
  state: string;
  attempts: number;
  agent: { id: string } | null;
  progress: { percent: number } | null;
  result: unknown;
  error: { message: string } | null;
}
interface Page<T> {
  totalCount: number;
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const ids: Record<string, string> = {};

describe('the document', () => {
  it('is the checked-in gateway/rest/generated/openapi.json, also served as YAML', async () => {
    const checkedIn = JSON.parse(readFileSync(join(REPO_ROOT, 'gateway/rest/generated/openapi.json'), 'utf8')) as unknown;
    expect(checker.doc).toEqual(checkedIn);
    const yaml = await rest(base, 'GET', '/openapi.yaml');
    expect(yaml.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(parseYaml(yaml.text)).toEqual(checkedIn);
  });
});

describe('every route with valid input', () => {
  it('registers, reads, lists, updates and moves an agent through its lifecycle', async () => {
    const register = checker.operation('RegisterAgent').operation.requestBody?.content['application/json']?.example;
    const created = await call('RegisterAgent', {}, { body: register });
    expect(created.status).toBe(201);
    exercised.set('RegisterAgent', 1);
    // A registration answers with the agent and its credential: null unless ?issueCredential=true.
    const { credential, ...agent } = created.body as Agent & { credential: unknown };
    expect(credential).toBeNull();
    expect(agent).toMatchObject({ name: 'Summariser', status: 'REGISTERED', version: 1 });
    expect(created.headers.get('location')).toBe(`/v1/agents/${agent.id}`);
    ids.agent = agent.id;

    const fromCard = checker.operation('RegisterAgentFromCard').operation.requestBody?.content['application/json']?.example;
    const { credential: cardCredential, ...translator } = await ok<Agent & { credential: unknown }>('RegisterAgentFromCard', {}, { body: fromCard });
    expect(cardCredential).toBeNull();
    expect(translator).toMatchObject({ name: 'Translator', status: 'REGISTERED', labels: [{ key: 'team', value: 'i18n' }] });

    expect(await ok<Agent>('GetAgent', { id: agent.id })).toEqual(agent);

    const page = await ok<Page<Agent>>('ListAgents', {}, { query: 'label[key]=team&label[value]=research&status=REGISTERED&first=5' });
    expect(page.totalCount).toBe(1);
    expect(page.nodes.map((a) => a.id)).toEqual([agent.id]);
    // Cursor pagination: two pages of one cover both agents, newest first.
    const first = await ok<Page<Agent>>('ListAgents', {}, { query: { first: '1' } });
    expect(first).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    const second = await ok<Page<Agent>>('ListAgents', {}, { query: { first: '1', after: first.pageInfo.endCursor ?? '' } });
    expect(second.pageInfo.hasNextPage).toBe(false);
    expect([...first.nodes, ...second.nodes].map((a) => a.id)).toEqual([translator.id, agent.id]);

    const updated = await ok<Agent>(
      'UpdateAgent',
      { id: agent.id },
      {
        query: { expectedVersion: '1' },
        // The planning skill: the tasks below require it, and an agent claims only with its registered tags.
        body: { description: 'Summarises long documents', labels: [], skills: [{ id: 'plan', name: 'Planning', tags: ['planning'] }] },
      },
    );
    expect(updated).toMatchObject({ version: 2, labels: [] });
    expect(await ok<Agent>('ActivateAgent', { id: agent.id }, { query: { expectedVersion: '2' } })).toMatchObject({ status: 'ACTIVE', version: 3 });
    const beat = await ok<Agent>('RecordHeartbeat', { id: agent.id });
    expect(beat.lastHeartbeatAt).not.toBeNull();
    expect(await ok<Agent>('PauseAgent', { id: agent.id })).toMatchObject({ status: 'PAUSED' });
    expect(await ok<Agent>('ResumeAgent', { id: agent.id })).toMatchObject({ status: 'ACTIVE' });
    expect(await ok<Agent>('RetireAgent', { id: translator.id })).toMatchObject({ status: 'RETIRED' });
  });

  it('runs tasks through the lease protocol: submit, claim, progress, input, complete, fail, cancel', async () => {
    const agentId = ids.agent ?? '';
    const example = checker.operation('SubmitTask').operation.requestBody?.content['application/json']?.example;
    const documented = await ok<Task>('SubmitTask', {}, { body: example });
    expect(documented.state).toBe('SUBMITTED');

    const created = await call('SubmitTask', {}, { body: { title: 'Draft the plan', requiredSkillTags: ['planning'], priority: 10 } });
    const task = created.body as Task;
    expect(created.headers.get('location')).toBe(`/v1/tasks/${task.id}`);
    expect(await ok<Task>('GetTask', { id: task.id })).toEqual(task);
    const listed = await ok<Page<Task>>('ListTasks', {}, { query: { state: 'SUBMITTED', skillTag: 'planning' } });
    expect(listed.nodes.map((t) => t.id)).toEqual([task.id]);

    const claimed = await ok<Task>('ClaimTask', {}, { body: { agentId, skillTags: ['planning'], leaseSeconds: 60 } });
    expect(claimed).toMatchObject({ id: task.id, state: 'ASSIGNED', attempts: 1, agent: { id: agentId } });
    // Nothing else is claimable with these tags: 204, no body.
    const none = await call('ClaimTask', {}, { body: { agentId, skillTags: ['planning'] } });
    expect(none.status).toBe(204);
    expect(none.text).toBe('');

    expect(await ok<Task>('ReportTaskProgress', { id: task.id }, { body: { agentId, percent: 40, message: 'halfway-ish' } })).toMatchObject({
      state: 'WORKING',
      progress: { percent: 40 },
    });
    expect(await ok<Task>('RequestTaskInput', { id: task.id }, { body: { agentId, message: 'Which quarter?' } })).toMatchObject({ state: 'INPUT_REQUIRED' });
    expect(await ok<Task>('ProvideTaskInput', { id: task.id }, { body: { input: { quarter: 'Q3' } } })).toMatchObject({ state: 'WORKING' });
    expect(await ok<Task>('CompleteTask', { id: task.id }, { body: { agentId, result: { plan: ['a', 'b'] } } })).toMatchObject({
      state: 'COMPLETED',
      result: { plan: ['a', 'b'] },
    });
    ids.completedTask = task.id;

    const second = (await call('SubmitTask', {}, { body: { title: 'Doomed', requiredSkillTags: ['planning'] } })).body as Task;
    await ok('ClaimTask', {}, { body: { agentId, skillTags: ['planning'] } });
    expect(
      await ok<Task>('FailTask', { id: second.id }, { body: { agentId, error: { message: 'cannot', type: 'BAD_SOURCE' }, retryable: false } }),
    ).toMatchObject({
      state: 'FAILED',
      error: { message: 'cannot' },
    });

    const third = (await call('SubmitTask', {}, { body: { title: 'Never mind' } })).body as Task;
    expect(await ok<Task>('CancelTask', { id: third.id })).toMatchObject({ state: 'CANCELED' });
  });

  it('creates workflow definitions and starts, reads, lists and cancels runs', async () => {
    const example = checker.operation('CreateWorkflowDefinition').operation.requestBody?.content['application/json']?.example;
    const created = await call('CreateWorkflowDefinition', {}, { body: example });
    expect(created.status).toBe(201);
    exercised.set('CreateWorkflowDefinition', 1);
    const definition = created.body as { id: string; name: string; version: number };
    expect(definition).toMatchObject({ name: 'quarterly-report', version: 1 });
    expect(await ok('GetWorkflowDefinition', { id: definition.id })).toEqual(definition);
    const listed = await ok<Page<{ id: string }>>('ListWorkflowDefinitions', {}, { query: { name: 'quarterly-report' } });
    expect(listed.nodes.map((d) => d.id)).toEqual([definition.id]);

    const run = (await call('StartWorkflowRun', {}, { body: { definitionId: definition.id, input: { quarter: '2026-Q3' } } })).body as {
      id: string;
      status: string;
      steps: { stepId: string; status: string }[];
    };
    exercised.set('StartWorkflowRun', 1);
    expect(run.status).toBe('RUNNING');
    expect(run.steps).toEqual([
      expect.objectContaining({ stepId: 'research', status: 'RUNNING' }),
      expect.objectContaining({ stepId: 'write', status: 'PENDING' }),
    ]);
    expect(await ok('GetWorkflowRun', { id: run.id })).toEqual(run);
    const runs = await ok<Page<{ id: string }>>('ListWorkflowRuns', {}, { query: { definitionId: definition.id, status: 'RUNNING' } });
    expect(runs.nodes.map((r) => r.id)).toEqual([run.id]);
    expect(await ok('CancelWorkflowRun', { id: run.id })).toMatchObject({ status: 'CANCELED' });
    ids.canceledRun = run.id;
  });

  it('remembers, updates, lists, searches and forgets memories', async () => {
    const memory = await ok<{ id: string; version: number }>(
      'Remember',
      {},
      { body: { namespace: 'shared/contract', text: 'Invoices are due within 30 days', vector: [0.1, 0.2, 0.3] } },
    );
    expect(await ok('GetMemory', { id: memory.id })).toMatchObject({ id: memory.id, version: 1 });
    expect(await ok('UpdateMemory', { id: memory.id }, { query: { expectedVersion: '1' }, body: { text: 'Invoices are due within 45 days' } })).toMatchObject({
      version: 2,
    });
    expect(await ok<{ version: number }[]>('GetMemoryHistory', { id: memory.id })).toHaveLength(2);
    const batch = await ok<{ id: string }[]>(
      'RememberBatch',
      {},
      { body: { inputs: [{ namespace: 'shared/contract/b', text: 'Refunds take five days', kind: 'EPISODIC' }] } },
    );
    expect(batch).toHaveLength(1);
    const listed = await ok<Page<{ id: string }>>('ListMemories', {}, { query: { namespacePrefix: 'shared/contract' } });
    expect(listed.nodes.map((m) => m.id).sort()).toEqual([memory.id, batch[0]!.id].sort());
    const hits = await ok<{ mode: string; memory: { id: string } }[]>(
      'SearchMemories',
      {},
      { query: 'text=invoices&vector=0.1&vector=0.2&vector=0.3&namespacePrefix=shared/contract' },
    );
    expect(hits[0]).toMatchObject({ mode: 'HYBRID', memory: { id: memory.id } });
    expect(await ok('ForgetMemories', {}, { body: { namespacePrefix: 'shared/contract/b' } })).toEqual({ forgotten: 1 });
    expect(await ok('ForgetMemory', { id: memory.id })).toBe(true);
    expect(await ok('GetMemoryVectorIndex')).toMatchObject({ engine: expect.any(String), loaded: expect.any(Boolean) });
  });

  it('manages webhook endpoints, deliveries, inbound integrations and triggers', async () => {
    const types = await ok<{ name: string; source: string }[]>('ListWebhookEventTypes', {}, { query: { source: 'memory' } });
    expect(types.map((t) => t.source)).toEqual(['memory', 'memory', 'memory']);
    const example = checker.operation('CreateWebhookEndpoint').operation.requestBody?.content['application/json']?.example;
    const created = await call('CreateWebhookEndpoint', {}, { body: example });
    expect(created.status).toBe(201);
    exercised.set('CreateWebhookEndpoint', 1);
    const { endpoint, secret } = created.body as { secret: string; endpoint: { id: string; enabled: boolean } };
    expect(secret).toMatch(/^whsec_/);
    expect(await ok('GetWebhookEndpoint', { id: endpoint.id })).toEqual(endpoint);
    expect((await ok<Page<{ id: string }>>('ListWebhookEndpoints', {}, { query: { first: '5' } })).nodes.map((e) => e.id)).toContain(endpoint.id);
    expect(await ok('UpdateWebhookEndpoint', { id: endpoint.id }, { body: { enabled: false } })).toMatchObject({ enabled: false });
    const rotated = await ok<{ secret: string; endpoint: { secrets: unknown[] } }>(
      'RotateWebhookSecret',
      { id: endpoint.id },
      { query: { overlapSeconds: '60' } },
    );
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.endpoint.secrets).toHaveLength(2);
    const delivery = await ok<{ id: string; status: string }>('SendWebhookTestEvent', { id: endpoint.id });
    expect(delivery.status).toBe('PENDING');
    expect(await ok('GetWebhookDelivery', { id: delivery.id })).toMatchObject({ id: delivery.id, eventType: 'WebhookTest' });
    expect((await ok<{ deliveries: Page<{ id: string }> }>('ListWebhookDeliveries', { id: endpoint.id })).deliveries.nodes.map((d) => d.id)).toEqual([
      delivery.id,
    ]);
    expect(await ok('RetryWebhookDelivery', { id: delivery.id })).toMatchObject({ status: 'PENDING' });
    expect(await ok('ReplayWebhookEvents', { id: endpoint.id }, { body: { from: '2026-01-01T00:00:00.000Z', to: '2026-01-02T00:00:00.000Z' } })).toEqual({
      queued: 0,
    });

    const inbound = await call(
      'CreateInboundIntegration',
      {},
      { body: checker.operation('CreateInboundIntegration').operation.requestBody?.content['application/json']?.example },
    );
    expect(inbound.status).toBe(201);
    exercised.set('CreateInboundIntegration', 1);
    const { integration } = inbound.body as { integration: { id: string; hookPath: string } };
    expect(integration.hookPath).toBe(`/v1/hooks/github/${integration.id}`);
    expect((await ok<{ id: string }[]>('ListInboundIntegrations', {}, { query: { provider: 'GITHUB' } })).map((i) => i.id)).toContain(integration.id);

    const trigger = await call('CreateTrigger', {}, { body: checker.operation('CreateTrigger').operation.requestBody?.content['application/json']?.example });
    expect(trigger.status).toBe(201);
    exercised.set('CreateTrigger', 1);
    const { id: triggerId } = trigger.body as { id: string };
    expect(trigger.headers.get('location')).toBe(`/v1/triggers/${triggerId}`);
    expect(await ok('GetTrigger', { id: triggerId })).toMatchObject({ id: triggerId, action: 'SUBMIT_TASK' });
    expect((await ok<Page<{ id: string }>>('ListTriggers')).nodes.map((t) => t.id)).toContain(triggerId);
    expect(await ok('SetTriggerEnabled', { id: triggerId }, { body: { enabled: false } })).toMatchObject({ enabled: false });
    expect((await ok<{ runs: Page<unknown> }>('ListTriggerRuns', { id: triggerId })).runs.totalCount).toBe(0);
    expect(await ok('DeleteTrigger', { id: triggerId })).toBe(true);
    expect(await ok('DeleteInboundIntegration', { id: integration.id })).toBe(true);
    expect(await ok('DeleteWebhookEndpoint', { id: endpoint.id })).toBe(true);
  });

  it('serves discovery: cards, DUADP, WebFinger, matching, services and peers', async () => {
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
      platform.url,
      'mutation { registerAgent(input: { name: "Contract Finder", skills: [{ id: "find", name: "Find", tags: ["finding"] }] }) { id } }',
    );
    const agentId = registerAgent.id;
    await gqlOk(platform.url, 'mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: agentId });
    const settings = checker.operation('SetAgentDiscovery').operation.requestBody?.content['application/json']?.example;
    expect(await ok('SetAgentDiscovery', { agentId }, { query: { expectedVersion: '0' }, body: settings })).toMatchObject({ public: true, version: 1 });
    expect(await ok('GetAgentCard', { id: agentId })).toMatchObject({ name: 'Contract Finder', skills: [{ id: 'find' }] });
    expect(await ok('GetAgentCardWellKnown', { id: agentId })).toMatchObject({ name: 'Contract Finder' });
    expect(await ok('GetDuadpNode')).toMatchObject({ protocol: 'DUADP', version: '0.1.0' });
    expect(await ok('ListDuadpAgents', {}, { query: { q: 'contract', limit: '5' } })).toMatchObject({ total: 1, agents: [{ id: agentId }] });
    expect(await ok('ListDuadpSkills', {}, { query: { q: 'finding' } })).toMatchObject({ skills: [{ id: 'find' }] });
    const acct = `acct:${agentId}@127.0.0.1:4000`;
    expect(await ok('Webfinger', {}, { query: { resource: acct } })).toMatchObject({ subject: acct });
    expect(await ok<{ agentId: string }[]>('MatchAgents', {}, { query: 'skills=finding&limit=3' })).toEqual([expect.objectContaining({ agentId })]);

    const service = await ok<{ id: string; status: string }>(
      'RegisterService',
      {},
      { body: { name: 'Contract tool', kind: 'HTTP_TOOL', endpoint: 'https://tools.example.com/contract', ttlSeconds: 60 } },
    );
    expect(service.status).toBe('UP');
    expect(await ok('GetService', { id: service.id })).toMatchObject({ id: service.id });
    expect(await ok<Page<{ id: string }>>('ListServices', {}, { query: { kind: 'HTTP_TOOL' } })).toMatchObject({ totalCount: 1 });
    expect(await ok('HeartbeatService', { id: service.id })).toMatchObject({ status: 'UP' });
    expect(await ok('DeregisterService', { id: service.id })).toBe(true);

    // A peer nobody serves: registered, pulled (failing), listed, removed.
    const peer = await ok<{ id: string }>('RegisterPeer', {}, { body: { name: 'Nobody', kind: 'DUADP', url: 'http://127.0.0.1:9', syncIntervalSeconds: 60 } });
    expect(await ok('SyncPeer', { id: peer.id })).toMatchObject({ state: 'FAILING', consecutiveFailures: expect.any(Number) });
    expect(await ok<{ id: string }[]>('ListPeers')).toEqual([expect.objectContaining({ id: peer.id })]);
    expect(await ok('ListRemoteAgents', {}, { query: { peerId: peer.id } })).toEqual([]);
    expect(await ok('RemovePeer', { id: peer.id })).toBe(true);
  });

  it('opens channels, posts, edits and deletes messages, marks them read, and sets presence', async () => {
    const taskChannel = await ok<{ id: string; kind: string }>('OpenTaskChannel', { id: ids.completedTask ?? '' });
    expect(taskChannel.kind).toBe('TASK');
    expect(await ok<{ kind: string }>('OpenWorkflowRunChannel', { id: ids.canceledRun ?? '' })).toMatchObject({ kind: 'WORKFLOW_RUN' });
    expect(await ok('JoinChannel', { id: taskChannel.id }, { query: { role: 'MEMBER' } })).toMatchObject({ role: 'OWNER' });
    const group = await ok<{ id: string }>(
      'CreateChannel',
      {},
      { body: { kind: 'GROUP', title: 'contract', participants: [{ kind: 'USER', id: 'contract-peer' }] } },
    );
    expect(await ok('AddParticipant', { id: group.id }, { body: { kind: 'USER', id: 'contract-observer', role: 'OBSERVER' } })).toMatchObject({
      role: 'OBSERVER',
    });
    expect(await ok('RemoveParticipant', { id: group.id }, { query: { kind: 'USER', participantId: 'contract-observer' } })).toBe(true);
    const message = await ok<{ id: string; sequence: number }>(
      'SendMessage',
      { id: group.id },
      {
        body: {
          parts: [{ text: 'hello' }, { data: { n: 1 } }, { file: { uri: 'https://files.example/a.txt', mediaType: 'text/plain', sizeBytes: 3 } }],
          clientMessageId: 'contract-1',
        },
      },
    );
    expect(message.sequence).toBe(1);
    expect(await ok('GetMessage', { id: message.id })).toMatchObject({ id: message.id });
    expect(await ok('EditMessage', { id: message.id }, { query: { expectedVersion: '1' }, body: { parts: [{ text: 'hello, edited' }] } })).toMatchObject({
      version: 2,
    });
    expect(await ok<{ history: unknown[] }>('GetMessageHistory', { id: message.id })).toMatchObject({ history: [{ version: 2 }, { version: 1 }] });
    const listed = await ok<{ messages: { nodes: { id: string }[] } }>('ListMessages', { id: group.id }, { query: { last: '10' } });
    expect(listed.messages.nodes.map((m) => m.id)).toEqual([message.id]);
    expect(await ok('GetChannel', { id: group.id })).toMatchObject({ id: group.id, lastSequence: 1 });
    expect((await ok<Page<{ id: string }>>('ListChannels', {}, { query: { kind: 'GROUP' } })).nodes.map((c) => c.id)).toContain(group.id);
    expect(await ok('MarkRead', { id: group.id }, { body: { sequence: 1 } })).toMatchObject({ myLastReadSequence: 1, unreadCount: 0 });
    expect(await ok('SetTyping', { id: group.id })).toBe(true);
    expect(await ok('DeleteMessage', { id: message.id })).toMatchObject({ version: 3, parts: [] });
    expect(await ok('LeaveChannel', { id: taskChannel.id })).toBe(true);
    expect(await ok('SetPresence', {}, { body: { status: 'AWAY' } })).toMatchObject({ chosenStatus: 'AWAY' });
    expect(await ok('Heartbeat', {}, { query: { status: 'BUSY' } })).toMatchObject({ status: 'BUSY', connections: 1 });
    expect(await ok<{ participant: { id: string } }[]>('OnlineParticipants', {}, { query: { first: '10' } })).toEqual(
      expect.arrayContaining([expect.objectContaining({ status: 'BUSY' })]),
    );
  });

  it('sets, reads, increments and deletes working memory, with compare-and-set conflicts as 409', async () => {
    const key = `plan-${randomUUID().slice(0, 8)}`;
    const where = { query: { namespace: 'shared/scratch', key } };
    await problemOf('GetWorkingMemory', {}, where, 404, 'NOT_FOUND');
    const set = await ok('SetWorkingMemory', {}, { body: { namespace: 'shared/scratch', key, value: { step: 1 }, ttlSeconds: 600, ifVersion: 0 } });
    expect(set).toMatchObject({ key, value: { step: 1 }, version: 1, expiresAt: expect.any(String) });
    const stale = await problemOf('SetWorkingMemory', {}, { body: { namespace: 'shared/scratch', key, value: 2, ifVersion: 0 } }, 409, 'CONFLICT');
    expect(stale.detail).toContain('already exists (version 1)');
    expect(await ok('GetWorkingMemory', {}, where)).toMatchObject({ value: { step: 1 }, version: 1 });
    const counter = { namespace: 'shared/scratch', key: `${key}-count` };
    await ok('IncrementWorkingMemory', {}, { body: { ...counter, by: 2 } });
    expect(await ok('IncrementWorkingMemory', {}, { body: counter })).toMatchObject({ value: 3, version: 2 });
    await problemOf('IncrementWorkingMemory', {}, { body: { namespace: 'shared/scratch', key, by: 1 } }, 400, 'BAD_USER_INPUT');
    await problemOf('SetWorkingMemory', {}, { body: { namespace: '../up', key, value: 1 } }, 400, 'BAD_USER_INPUT');
    expect(await ok('DeleteWorkingMemory', {}, { query: { ...where.query, ifVersion: '1' } })).toBe(true);
    expect(await ok('DeleteWorkingMemory', {}, where)).toBe(false);
  });

  it('upserts, reads, expands, searches, merges and deletes knowledge-graph entities', async () => {
    const t = randomUUID().slice(0, 8);
    const entities = await ok<{ id: string }[]>(
      'UpsertEntities',
      {},
      { body: { inputs: ['a', 'b', 'c'].map((k) => ({ type: 'Repo', key: `${k}-${t}`, name: `contract repo ${k}` })) } },
    );
    const [a, b, c] = entities.map((e) => e.id) as [string, string, string];
    const relations = await ok<{ id: string }[]>('UpsertRelations', {}, { body: { inputs: [{ type: 'FORK_OF', source: { id: b }, target: { id: a } }] } });
    expect(relations).toHaveLength(1);
    expect(await ok('GetEntity', { id: b })).toMatchObject({ id: b, relations: [{ targetId: a }] });
    expect(await ok('GetEntityByKey', { type: 'Repo', key: `a-${t}` })).toMatchObject({ id: a });
    expect(await ok('ListEntityRelations', { id: a }, { query: { history: 'true' } })).toMatchObject({ relations: [{ sourceId: b }] });
    expect(await ok('ListEntityNeighbours', { id: a })).toMatchObject({ neighbours: [{ id: b }] });
    await ok('UpsertEntities', {}, { body: { inputs: [{ type: 'Repo', key: `a-${t}`, name: 'renamed repo a' }] } });
    expect(await ok('ListEntityHistory', { id: a })).toMatchObject({
      history: [
        { version: 1, name: 'contract repo a', validTo: expect.any(String) },
        { version: 2, name: 'renamed repo a', validTo: null },
      ],
    });
    expect(await ok('ExpandGraph', {}, { query: { fromId: b, depth: '1' } })).toMatchObject({ truncated: false, edges: [{ sourceId: b }] });
    expect(await ok('ShortestPath', {}, { query: { fromId: b, toId: a } })).toMatchObject({ length: 1 });
    const hits = await ok<{ entity: { id: string } }[]>('SearchEntities', {}, { query: { text: 'contract', types: 'Repo' } });
    expect(hits.map((h) => h.entity.id)).toContain(c);
    expect(await ok('MergeEntities', { intoId: a }, { body: { ids: [c] } })).toMatchObject({ id: a });
    expect(await ok('DeleteEntity', { id: b }, { query: { cascade: 'true' } })).toBe(true);
  });

  it('exercised every operation of the document', () => {
    expect([...exercised.keys()].sort()).toEqual(checker.operations.map((o) => o.operation.operationId).sort());
  });
});

describe('invalid input', () => {
  it('gets 400 problem+json naming the bad value on every route, and changes nothing', async () => {
    const before = await rest(base, 'GET', '/v1/agents');
    for (const { method, path, operation } of checker.operations) {
      const id = operation.operationId;
      const body = operation.requestBody?.content['application/json']?.schema;
      const queryParams = (operation.parameters ?? []).filter((p) => p.in === 'query');
      let request: RestRequest = {};
      let expected: { pointer?: string; parameter?: string };
      let url = path.replace(/\{(\w+)\}/g, () => randomUUID());
      if (body && checker.requiredOf(body).length > 0) {
        request = { body: {} };
        expected = { pointer: `#/${checker.requiredOf(body)[0]}` };
      } else if (body) {
        request = { body: { notAField: 1 } };
        expected = { pointer: '#/notAField' };
      } else if (queryParams.length > 0) {
        request = { query: { notAParameter: '1' } };
        expected = { parameter: 'notAParameter' };
      } else if (!path.includes('{')) {
        // No input at all (the DUADP descriptor, the peer list): nothing can be invalid.
        continue;
      } else {
        // Only path parameters: an id that is no UUID, refused by the resolver itself.
        url = path.replace('{id}', 'not-a-uuid');
        expected = { parameter: 'id' };
      }
      const res = await rest(base, method, url, request);
      expect(res.status, `${id}: ${res.text}`).toBe(400);
      expect(checker.check(id, res), id).toEqual([]);
      const problem = asProblem(res);
      expect(problem.code, id).toBe('BAD_USER_INPUT');
      expect(problem.errors, id).toEqual(expect.arrayContaining([expect.objectContaining({ ...expected, detail: expect.any(String) })]));
    }
    expect((await rest(base, 'GET', '/v1/agents')).body).toEqual(before.body);
  });

  it('reports every bad parameter and body value at once, before anything runs', async () => {
    const query = await problemOf('ListAgents', {}, { query: 'first=ten&status=SLEEPING&label[colour]=red&first=2' }, 400, 'BAD_USER_INPUT');
    expect(query.errors).toEqual(
      expect.arrayContaining([
        { parameter: 'first', detail: 'is given more than once' },
        { parameter: 'status', detail: expect.stringContaining('must be one of "REGISTERED", "ACTIVE"') },
        { parameter: 'label[colour]', detail: expect.stringContaining('label[key], label[value]') },
      ]),
    );
    const typed = await problemOf('ListTasks', {}, { query: { first: 'ten' } }, 400, 'BAD_USER_INPUT');
    expect(typed.errors).toEqual([{ parameter: 'first', detail: 'must be integer' }]);

    const body = await problemOf('RegisterAgent', {}, { body: { name: 7, skills: [{ id: 'a' }], labels: 'x', extra: true } }, 400, 'BAD_USER_INPUT');
    expect(body.errors).toEqual(
      expect.arrayContaining([
        { pointer: '#/name', detail: 'must be string' },
        { pointer: '#/skills/0/name', detail: 'is required' },
        { pointer: '#/labels', detail: 'must be array or null' },
        { pointer: '#/extra', detail: 'is not a known property here' },
      ]),
    );
    const required = await problemOf('SubmitTask', {}, {}, 400, 'BAD_USER_INPUT');
    expect(required.errors).toEqual([{ pointer: '#', detail: 'a JSON request body is required' }]);
  });

  it('maps rules enforced by the resolvers to the request value too', async () => {
    const before = (await rest(base, 'GET', '/v1/agents')).body as Page<Agent>;
    // Valid by the schema (a string), too long for the domain rule: the subgraph refuses it.
    const long = await problemOf('RegisterAgent', {}, { body: { name: 'x'.repeat(201) } }, 400, 'BAD_USER_INPUT');
    expect(long.errors).toEqual([{ pointer: '#/name', detail: expect.stringContaining('at most 200 characters') }]);
    const duplicate = await problemOf(
      'RegisterAgent',
      {},
      {
        body: {
          name: 'Dup',
          skills: [
            { id: 's', name: 'A' },
            { id: 's', name: 'B' },
          ],
        },
      },
      400,
      'BAD_USER_INPUT',
    );
    expect(duplicate.errors).toEqual([{ pointer: '#/skills/1/id', detail: expect.any(String) }]);
    const card = await problemOf('RegisterAgentFromCard', {}, { body: { card: { name: 'No description' } } }, 400, 'BAD_USER_INPUT');
    expect(card.errors).toEqual([{ pointer: '#/card/description', detail: 'card.description is required' }]);
    const percent = await problemOf('ReportTaskProgress', { id: randomUUID() }, { body: { agentId: randomUUID(), percent: 101 } }, 400, 'BAD_USER_INPUT');
    expect(percent.errors).toEqual([{ pointer: '#/percent', detail: expect.stringContaining('from 0 to 100') }]);
    const filter = await problemOf('ListTasks', {}, { query: { agentId: 'nope' } }, 400, 'BAD_USER_INPUT');
    expect(filter.errors).toEqual([{ parameter: 'agentId', detail: expect.stringContaining('must be a UUID') }]);
    const cursor = await problemOf('ListAgents', {}, { query: { after: 'garbage' } }, 400, 'BAD_USER_INPUT');
    expect(cursor.errors).toEqual([{ parameter: 'after', detail: expect.stringContaining('not a cursor') }]);
    expect((await rest(base, 'GET', '/v1/agents')).body).toEqual(before);
  });
});

describe('404 and 409', () => {
  it('answers 404 for ids that name nothing', async () => {
    const missing = randomUUID();
    for (const op of [
      'GetAgent',
      'GetTask',
      'GetWorkflowDefinition',
      'GetWorkflowRun',
      'ActivateAgent',
      'RecordHeartbeat',
      'CancelTask',
      'CancelWorkflowRun',
    ]) {
      const problem = await problemOf(op, { id: missing }, {}, 404, 'NOT_FOUND');
      expect(problem.detail, op).toContain(missing);
    }
    await problemOf('UpdateAgent', { id: missing }, { body: { name: 'x' } }, 404, 'NOT_FOUND');
    await problemOf('CompleteTask', { id: missing }, { body: { agentId: ids.agent } }, 404, 'NOT_FOUND');
    await problemOf('StartWorkflowRun', {}, { body: { definitionId: missing } }, 404, 'NOT_FOUND');
  });

  it('answers 409 for illegal transitions and stale versions, changing nothing', async () => {
    const agent = (await rest(base, 'GET', `/v1/agents/${ids.agent}`)).body as Agent;
    const activate = await problemOf('ActivateAgent', { id: agent.id }, {}, 409, 'CONFLICT');
    expect(activate.detail).toContain('ACTIVE → ACTIVE is not allowed');
    const stale = await problemOf(
      'UpdateAgent',
      { id: agent.id },
      { query: { expectedVersion: String(agent.version - 1) }, body: { name: 'Renamed' } },
      409,
      'CONFLICT',
    );
    expect(stale.detail).toContain(`is at version ${agent.version}`);
    await problemOf('CancelTask', { id: ids.completedTask ?? '' }, {}, 409, 'CONFLICT');
    await problemOf('CancelWorkflowRun', { id: ids.canceledRun ?? '' }, {}, 409, 'CONFLICT');
    const other = await problemOf('CompleteTask', { id: ids.completedTask ?? '' }, { body: { agentId: randomUUID() } }, 409, 'CONFLICT');
    expect(other.detail).toMatch(/cannot go from COMPLETED|held by another agent/);
    expect((await rest(base, 'GET', `/v1/agents/${agent.id}`)).body).toEqual(agent);
  });
});

describe('REST and GraphQL', () => {
  it('return identical data for the same read', async () => {
    const reads: [string, Record<string, unknown>, string, Record<string, string>][] = [
      ['GetAgent', { id: ids.agent }, `/v1/agents/${ids.agent}`, {}],
      ['ListAgents', { status: 'ACTIVE', first: 5 }, '/v1/agents', { status: 'ACTIVE', first: '5' }],
      ['ListAgents', { label: { key: 'team' } }, '/v1/agents', { 'label[key]': 'team' }],
      ['GetTask', { id: ids.completedTask }, `/v1/tasks/${ids.completedTask}`, {}],
      ['ListTasks', { state: 'COMPLETED' }, '/v1/tasks', { state: 'COMPLETED' }],
      ['GetWorkflowRun', { id: ids.canceledRun }, `/v1/workflow-runs/${ids.canceledRun}`, {}],
      ['ListWorkflowDefinitions', {}, '/v1/workflow-definitions', {}],
    ];
    for (const [operationId, variables, path, query] of reads) {
      const document = checker.operation(operationId).operation['x-graphql-operation'];
      const data = await gqlOk<Record<string, unknown>>(platform.url, document, variables);
      const viaRest = await rest(base, 'GET', path, { query });
      expect(viaRest.status).toBe(200);
      expect(viaRest.body, operationId).toEqual(Object.values(data)[0]);
    }
  });

  it('share the access log: REST requests are logged with their operation name', () => {
    const lines = platform.gateway.jsonLogs().filter((l) => l.msg === 'request' && typeof l.path === 'string' && (l.path as string).startsWith('/v1/agents/'));
    expect(lines.some((l) => l.operationName === 'GetAgent' && l.status === 200)).toBe(true);
  });
});

describe('the typed example client (README)', () => {
  it('registers, reads, and lists across pages with the generated types', async () => {
    const client = agentsClient(base, { authorization: await defaultAuthorization() });
    const made = [];
    for (const name of ['Pager A', 'Pager B', 'Pager C']) made.push(await client.register({ name, skills: [{ id: 'p', name: 'Paging', tags: ['paging'] }] }));
    expect((await client.activate(made[0]?.id ?? '')).status).toBe('ACTIVE');
    const { credential, ...second } = made[1]!;
    expect(credential).toBeNull();
    expect(await client.get(second.id)).toEqual(second);
    // Asked for, the agent's own key comes with it, once.
    const withKey = await client.register({ name: 'Pager key' }, { issueCredential: true });
    expect(withKey.credential?.secret).toMatch(/^ap_/);
    const listed = [];
    for await (const agent of client.list({ skillTag: 'paging' }, 2)) listed.push(agent.name);
    expect(listed).toEqual(['Pager C', 'Pager B', 'Pager A']);
    const error = await client.get(randomUUID()).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).problem).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });
});

describe('the HTTP transport', () => {
  it('answers unknown routes with 404, other methods with 405 and Allow, OPTIONS with Allow', async () => {
    const unknown = await rest(base, 'GET', '/v1/robots');
    expect(unknown.status).toBe(404);
    expect(asProblem(unknown)).toMatchObject({ code: 'NOT_FOUND', instance: '/v1/robots' });
    const wrong = await rest(base, 'DELETE', `/v1/agents/${ids.agent}`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, PATCH');
    expect(asProblem(wrong).code).toBe('METHOD_NOT_ALLOWED');
    // A literal segment wins over a placeholder: /v1/tasks/claim is not task "claim".
    const claimByGet = await rest(base, 'GET', '/v1/tasks/claim');
    expect(claimByGet.status).toBe(405);
    expect(claimByGet.headers.get('allow')).toBe('POST');
    const options = await rest(base, 'OPTIONS', '/v1/agents');
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, POST');
  });

  it('refuses bodies that are not JSON, malformed or too large', async () => {
    const text = await rest(base, 'POST', '/v1/agents', { rawBody: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(text.status).toBe(415);
    expect(asProblem(text).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const malformed = await rest(base, 'POST', '/v1/agents', { rawBody: '{"name": ' });
    expect(malformed.status).toBe(400);
    expect(asProblem(malformed)).toMatchObject({ code: 'BAD_REQUEST', detail: expect.stringMatching(/^Malformed JSON body/) });
    const large = await rest(base, 'POST', '/v1/tasks', { body: { title: 'big', input: 'x'.repeat(70_000) } });
    expect(large.status).toBe(413);
    expect(asProblem(large).code).toBe('PAYLOAD_TOO_LARGE');
    const noBody = await rest(base, 'POST', `/v1/agents/${ids.agent}/heartbeat`, { body: { unexpected: true } });
    expect(noBody.status).toBe(400);
    expect(asProblem(noBody).errors).toEqual([{ pointer: '#/unexpected', detail: 'this route takes no request body' }]);
  });

  it('refuses cross-site simple requests (CSRF) and lets same-origin pages, JSON and non-browser clients through', async () => {
    const created = (await rest(base, 'POST', '/v1/agents', { body: { name: 'Target' } })).body as Agent;
    const host = new URL(base).host;
    const forged = await rest(base, 'POST', `/v1/agents/${created.id}/retire`, { headers: { origin: 'http://evil.example', 'content-type': 'text/plain' } });
    expect(forged.status).toBe(403);
    expect(asProblem(forged)).toMatchObject({ code: 'FORBIDDEN', detail: expect.stringContaining('Cross-site POST from http://evil.example refused') });
    const noType = await rest(base, 'POST', `/v1/agents/${created.id}/retire`, { headers: { origin: 'null' } });
    expect(noType.status).toBe(403);
    expect(((await rest(base, 'GET', `/v1/agents/${created.id}`)).body as Agent).status).toBe('REGISTERED');
    // Same origin (the /docs page), JSON (needs a preflight a browser would not get) and no Origin at all pass.
    expect((await rest(base, 'POST', `/v1/agents/${created.id}/activate`, { headers: { origin: `http://${host}` } })).status).toBe(200);
    expect(
      (await rest(base, 'POST', `/v1/agents/${created.id}/pause`, { headers: { origin: 'http://evil.example', 'content-type': 'application/json' } })).status,
    ).toBe(200);
    expect((await rest(base, 'POST', `/v1/agents/${created.id}/retire`)).status).toBe(200);
  });

  it('passes the request id through and never shows a stack trace', async () => {
    const res = await rest(base, 'GET', `/v1/agents/${randomUUID()}`, { headers: { 'x-request-id': 'rest-test-42' } });
    expect(res.headers.get('x-request-id')).toBe('rest-test-42');
    expect(asProblem(res).requestId).toBe('rest-test-42');
    expect(res.text).not.toMatch(/stack|\bat .*\.ts:\d+/);
  });

  it('answers 503 SUBGRAPH_UNAVAILABLE when the subgraph a route needs is down', async () => {
    await platform.orchestration.stop();
    const res = await rest(base, 'GET', '/v1/tasks');
    expect(res.status).toBe(503);
    expect(checker.check('ListTasks', res)).toEqual([]);
    expect(asProblem(res)).toMatchObject({ code: 'SUBGRAPH_UNAVAILABLE', detail: expect.stringContaining('Subgraph "orchestration" is unavailable') });
    // Routes served by the other subgraph still work.
    expect((await rest(base, 'GET', `/v1/agents/${ids.agent}`)).status).toBe(200);
  });
});
