// The gateway as a client sees it: the agents and orchestration subgraphs and the gateway run as
// separate processes; data is created with the real mutations through the gateway and read back
// with queries that join across the two subgraphs.
import { defaultAuthorization } from '../support/auth.ts';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort, gql, gqlOk, manageProcesses, startPlatform, startTcpTap, type Platform, type TcpTap } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let agentsTap: TcpTap;
let plannerId: string;
let idleId: string;
let claimedTaskId: string;
let openTaskId: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-gateway-'));
  // The gateway reaches agents through a TCP tap, which records what the gateway sends and how
  // many connections it opens; agents itself is the real process.
  const agentsPort = await getFreePort();
  agentsTap = await startTcpTap(agentsPort);
  platform = await startPlatform({ dataDir, ports: { agents: agentsPort }, subgraphUrls: { agents: agentsTap.url } });

  const planner = await gqlOk<{ registerAgent: { id: string; status: string } }>(
    platform.url,
    `mutation Register($input: RegisterAgentInput!) { registerAgent(input: $input) { id status } }`,
    {
      input: { name: 'Planner', description: 'Breaks work down', skills: [{ id: 'plan', name: 'Planning', tags: ['planning'] }], heartbeatIntervalSeconds: 30 },
    },
  );
  plannerId = planner.registerAgent.id;
  expect(planner.registerAgent.status).toBe('REGISTERED');
  const idle = await gqlOk<{ registerAgent: { id: string } }>(platform.url, `mutation { registerAgent(input: { name: "Idle" }) { id } }`);
  idleId = idle.registerAgent.id;

  const activated = await gqlOk<{ activateAgent: { status: string } }>(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { status } }`, {
    id: plannerId,
  });
  expect(activated.activateAgent.status).toBe('ACTIVE');
  await gqlOk(platform.url, `mutation($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id: plannerId });

  const submit = `mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id state } }`;
  const first = await gqlOk<{ submitTask: { id: string; state: string } }>(platform.url, submit, {
    input: { title: 'Draft the plan', requiredSkillTags: ['planning'], priority: 5 },
  });
  expect(first.submitTask.state).toBe('SUBMITTED');
  const second = await gqlOk<{ submitTask: { id: string } }>(platform.url, submit, {
    input: { title: 'Needs a linguist', requiredSkillTags: ['translation'] },
  });
  openTaskId = second.submitTask.id;

  const claim = await gqlOk<{ claimTask: { id: string; state: string; agent: { id: string; name: string } } | null }>(
    platform.url,
    `mutation($agentId: ID!) { claimTask(agentId: $agentId, skillTags: ["planning"]) { id state agent { id name } } }`,
    { agentId: plannerId },
  );
  expect(claim.claimTask).toMatchObject({ id: first.submitTask.id, state: 'ASSIGNED', agent: { id: plannerId, name: 'Planner' } });
  claimedTaskId = first.submitTask.id;
});

afterAll(async () => {
  await platform?.stop();
  await agentsTap?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('gateway over the agents and orchestration subgraphs', () => {
  it('runs on the backend the test run asked for', () => {
    const expected = process.env.DATABASE_URL ? /^postgres(ql)?:\/\/.* schema e2e[0-9a-f]{8}_agents$/ : /agents\.sqlite$/;
    const ready = platform.agents.jsonLogs().find((l) => l.msg === 'agents subgraph ready');
    expect(ready?.database).toMatch(expected);
  });

  it('joins agents with the tasks they hold', async () => {
    const data = await gqlOk<{
      agents: { totalCount: number; nodes: { name: string; tasks: { nodes: { title: string; state: string }[] }; activeTaskCount: number }[] };
    }>(platform.url, `{ agents { totalCount nodes { name tasks { nodes { title state } } activeTaskCount } } }`);
    expect(data.agents.totalCount).toBe(2);
    // Newest first.
    expect(data.agents.nodes).toEqual([
      { name: 'Idle', tasks: { nodes: [] }, activeTaskCount: 0 },
      { name: 'Planner', tasks: { nodes: [{ title: 'Draft the plan', state: 'ASSIGNED' }] }, activeTaskCount: 1 },
    ]);
  });

  it('joins a task with the agent holding it', async () => {
    const data = await gqlOk<{ task: { title: string; state: string; agent: { name: string; health: string; status: string } | null } }>(
      platform.url,
      `query($id: ID!) { task(id: $id) { title state agent { name health status } } }`,
      { id: claimedTaskId },
    );
    expect(data.task).toEqual({ title: 'Draft the plan', state: 'ASSIGNED', agent: { name: 'Planner', health: 'HEALTHY', status: 'ACTIVE' } });

    const open = await gqlOk<{ task: { title: string; agent: null } }>(platform.url, `query($id: ID!) { task(id: $id) { title agent { name } } }`, {
      id: openTaskId,
    });
    expect(open.task).toEqual({ title: 'Needs a linguist', agent: null });
  });

  it('answers both subgraphs in one request', async () => {
    const data = await gqlOk<{ agent: { name: string }; tasks: { totalCount: number } }>(
      platform.url,
      `query($id: ID!) { agent(id: $id) { name } tasks(filter: { state: SUBMITTED }) { totalCount } }`,
      { id: idleId },
    );
    expect(data).toEqual({ agent: { name: 'Idle' }, tasks: { totalCount: 1 } });
  });

  it('passes subgraph errors on with their codes and the subgraph name, HTTP 200', async () => {
    const conflict = await gql(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { status } }`, { id: plannerId });
    expect(conflict.status).toBe(200);
    expect(conflict.data).toBeNull();
    expect(conflict.errors).toEqual([
      expect.objectContaining({ path: ['activateAgent'], extensions: expect.objectContaining({ code: 'CONFLICT', serviceName: 'agents' }) }),
    ]);

    const badId = await gql(platform.url, `{ task(id: "not-a-uuid") { title } }`);
    expect(badId.status).toBe(200);
    expect(badId.errors).toEqual([
      expect.objectContaining({ path: ['task'], extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', serviceName: 'orchestration' }) }),
    ]);
    for (const error of [...(conflict.errors ?? []), ...(badId.errors ?? [])]) expect(JSON.stringify(error)).not.toMatch(/stacktrace|\.ts:\d+/);
  });

  it('rejects an invalid operation itself, without asking a subgraph', async () => {
    const result = await gql(platform.url, `{ agents { nodes { nope } } }`);
    expect(result.status).toBe(400);
    expect(result.errors).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/Cannot query field "nope"/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }),
    ]);
  });

  it('passes the request id and the configured client headers to every subgraph', async () => {
    const requestId = `e2e-${randomUUID()}`;
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const result = await gql(
      platform.url,
      `query Joined($id: ID!) { task(id: $id) { title agent { name } } }`,
      { id: claimedTaskId },
      { 'x-request-id': requestId, traceparent, authorization: await defaultAuthorization(), 'accept-language': 'fr-FR', cookie: 'private=1' },
    );
    expect(result.status).toBe(200);
    expect(result.headers.get('x-request-id')).toBe(requestId);
    expect(result.data).toEqual({ task: { title: 'Draft the plan', agent: { name: 'Planner' } } });

    // Each service writes one access-log line per request, under the id it was given.
    const logged = (logs: Record<string, unknown>[]) => logs.filter((l) => l.msg === 'request' && l.requestId === requestId && l.path === '/graphql');
    await expect.poll(() => logged(platform.orchestration.jsonLogs()).length).toBe(1);
    await expect.poll(() => logged(platform.agents.jsonLogs()).length).toBe(1);
    await expect.poll(() => logged(platform.gateway.jsonLogs())).toEqual([expect.objectContaining({ method: 'POST', status: 200 })]);

    // What the gateway sent to agents, read off the wire.
    const sent = agentsTap.requestHeaders().filter((h) => h['x-request-id'] === requestId);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ traceparent, 'accept-language': 'fr-FR', 'x-gateway-identity': expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) });
    // Credentials end at the gateway: the subgraph learns the caller only from the signed identity.
    expect(sent[0]).not.toHaveProperty('cookie');
    expect(sent[0]).not.toHaveProperty('authorization');
  });

  it('reuses keep-alive connections to a subgraph across sequential requests', async () => {
    const before = agentsTap.connections();
    for (let i = 0; i < 20; i++) {
      const data = await gqlOk<{ agent: { name: string } }>(platform.url, `query($id: ID!) { agent(id: $id) { name } }`, { id: plannerId });
      expect(data.agent.name).toBe('Planner');
    }
    // One socket would do; undici may add a second when a request goes out in the same tick the
    // previous one completed. Without keep-alive this would be 20.
    expect(agentsTap.connections() - before).toBeLessThanOrEqual(2);
    expect(agentsTap.connections()).toBeGreaterThan(0);
  });
});
