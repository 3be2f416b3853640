// What clients get when a subgraph is down, hung or restarting, and what happens to a request in
// flight when the gateway is told to stop. Every service is a real process; "down" is a stopped
// process, "hung" is a process frozen with SIGSTOP.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort, gql, gqlOk, manageProcesses, startPlatform, startTcpTap, type Platform, type TcpTap } from '../support/processes.ts';

manageProcesses();

const TIMEOUT_MS = 3_000;
let dataDir: string;
let platform: Platform;
let orchestrationTap: TcpTap;
let agentId: string;
let taskId: string;

const JOINED = `query Joined($agentId: ID!, $taskId: ID!) {
  agent(id: $agentId) { name }
  task(id: $taskId) { title state agent { name } }
}`;

const unavailable = (name: string, reason: string | RegExp) =>
  expect.objectContaining({
    message: typeof reason === 'string' ? `Subgraph "${name}" is unavailable: ${reason}` : expect.stringMatching(reason),
    extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: name },
  });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-resilience-'));
  // The gateway reaches orchestration through a TCP tap, so a test can see a request arrive there.
  const orchestrationPort = await getFreePort();
  orchestrationTap = await startTcpTap(orchestrationPort);
  platform = await startPlatform({
    dataDir,
    ports: { orchestration: orchestrationPort },
    subgraphUrls: { orchestration: orchestrationTap.url },
    gatewayEnv: { SUBGRAPH_TIMEOUT_MS: String(TIMEOUT_MS) },
  });
  const agent = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    `mutation { registerAgent(input: { name: "Worker", skills: [{ id: "sum", name: "Summaries", tags: ["summarize"] }] }) { id } }`,
  );
  agentId = agent.registerAgent.id;
  await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: agentId });
  const task = await gqlOk<{ submitTask: { id: string } }>(
    platform.url,
    `mutation { submitTask(input: { title: "Summarise the report", requiredSkillTags: ["summarize"] }) { id } }`,
  );
  taskId = task.submitTask.id;
  const claim = await gqlOk<{ claimTask: { id: string } | null }>(
    platform.url,
    `mutation($agentId: ID!) { claimTask(agentId: $agentId, skillTags: ["summarize"]) { id } }`,
    { agentId },
  );
  expect(claim.claimTask?.id).toBe(taskId);
});

afterAll(async () => {
  await platform?.stop();
  await orchestrationTap?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('gateway when a subgraph fails', () => {
  it('serves the whole query while both subgraphs are up', async () => {
    const data = await gqlOk(platform.url, JOINED, { agentId, taskId });
    expect(data).toEqual({ agent: { name: 'Worker' }, task: { title: 'Summarise the report', state: 'ASSIGNED', agent: { name: 'Worker' } } });
  });

  it('agents down: HTTP 200, the orchestration data, and errors naming agents; back when it returns', async () => {
    await platform.agents.stop();
    const down = await gql(platform.url, JOINED, { agentId, taskId });
    expect(down.status).toBe(200);
    expect(down.data).toEqual({ agent: null, task: { title: 'Summarise the report', state: 'ASSIGNED', agent: null } });
    // One error per fetch that needed agents: the root field and the task's agent.
    expect(down.errors).toEqual([
      unavailable('agents', `connect ECONNREFUSED 127.0.0.1:${platform.agents.port}`),
      unavailable('agents', `connect ECONNREFUSED 127.0.0.1:${platform.agents.port}`),
    ]);

    await platform.agents.restart();
    const back = await gqlOk(platform.url, JOINED, { agentId, taskId });
    expect(back).toEqual({ agent: { name: 'Worker' }, task: { title: 'Summarise the report', state: 'ASSIGNED', agent: { name: 'Worker' } } });
  });

  it('orchestration down: errors naming orchestration, agents data still served', async () => {
    await platform.orchestration.stop();
    const down = await gql(platform.url, JOINED, { agentId, taskId });
    expect(down.status).toBe(200);
    expect(down.data).toEqual({ agent: { name: 'Worker' }, task: null });
    // The tap in between accepts the connection and drops it when orchestration refuses its own.
    expect(down.errors).toEqual([unavailable('orchestration', /^Subgraph "orchestration" is unavailable: .+/)]);

    await platform.orchestration.restart();
    expect(await gqlOk(platform.url, JOINED, { agentId, taskId })).toMatchObject({ task: { title: 'Summarise the report' } });
  });

  it('agents hung: the request ends after SUBGRAPH_TIMEOUT_MS with the rest of the data', async () => {
    platform.agents.kill('SIGSTOP');
    try {
      const started = Date.now();
      const hung = await gql(platform.url, JOINED, { agentId, taskId });
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
      expect(elapsed).toBeLessThan(TIMEOUT_MS * 3);
      expect(hung.status).toBe(200);
      expect(hung.data).toEqual({ agent: null, task: { title: 'Summarise the report', state: 'ASSIGNED', agent: null } });
      expect(hung.errors?.length).toBeGreaterThan(0);
      for (const error of hung.errors ?? []) expect(error).toEqual(unavailable('agents', `no response within ${TIMEOUT_MS} ms`));
    } finally {
      platform.agents.kill('SIGCONT');
    }
    expect(await gqlOk(platform.url, JOINED, { agentId, taskId })).toMatchObject({ agent: { name: 'Worker' } });
  });
});

describe('gateway shutdown', () => {
  it('on SIGTERM stops taking connections but finishes the request in flight, then exits 0', async () => {
    const requestId = `in-flight-${randomUUID()}`;
    platform.orchestration.kill('SIGSTOP');
    let inFlight: ReturnType<typeof gql> | undefined;
    try {
      inFlight = gql(platform.url, `query($id: ID!) { task(id: $id) { title } }`, { id: taskId }, { 'x-request-id': requestId });
      // The request is in flight once the gateway has sent it on to the (frozen) orchestration subgraph.
      await expect.poll(() => orchestrationTap.requestHeaders().some((h) => h['x-request-id'] === requestId), { timeout: 5_000 }).toBe(true);

      platform.gateway.kill('SIGTERM');
      await expect
        .poll(
          async () =>
            fetch(`http://127.0.0.1:${platform.gateway.port}/healthz`).then(
              () => 'accepting',
              () => 'refusing',
            ),
          { timeout: 5_000 },
        )
        .toBe('refusing');
    } finally {
      platform.orchestration.kill('SIGCONT');
    }
    const result = await inFlight;
    const finished = Date.now();
    expect(result?.status).toBe(200);
    expect(result?.errors).toBeUndefined();
    expect(result?.data).toEqual({ task: { title: 'Summarise the report' } });
    expect(await platform.gateway.exited()).toEqual({ code: 0, signal: null });
    // Promptly: not after SHUTDOWN_TIMEOUT_MS (10 s) of waiting for the client's keep-alive socket.
    expect(Date.now() - finished).toBeLessThan(3_000);
    expect(platform.gateway.jsonLogs().map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'gateway stopped']));
  });
});
