// The gateway's policies toward subgraphs (gateway/upstream), with real processes: a subgraph
// killed (refuses), frozen with SIGSTOP (hangs) or made slow by a proxy in front of it; the
// circuit breaker opening and closing by itself, per-subgraph timeouts, and which requests are
// retried (queries) and which never are (mutations), counted where the subgraph receives them.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { getFreePort, gql, gqlOk, manageProcesses, startPlatform, supergraphSubgraphs, type Platform } from '../support/processes.ts';

manageProcesses();

const BREAKER_FAILURES = 3;
const RETRIES = 2;
const AGENTS_TIMEOUT_MS = 1_500;
const ORCHESTRATION_TIMEOUT_MS = 1_000;

let dataDir: string;
let platform: Platform;
let agentsProxy: FaultProxy;
let agentId: string;
let taskId: string;

const TASK = 'query Task($id: ID!) { task(id: $id) { title } }';
const AGENT = 'query Agent($id: ID!) { agent(id: $id) { name } }';
const JOINED = `query Joined($agentId: ID!, $taskId: ID!) {
  agent(id: $agentId) { name }
  task(id: $taskId) { title }
}`;

interface Readiness {
  status: string;
  checks?: Record<string, string>;
}

async function readiness(): Promise<Readiness> {
  const res = await fetch(`http://127.0.0.1:${platform.gateway.port}/readyz`);
  expect(res.status).toBe(200);
  return (await res.json()) as Readiness;
}

const gatewayLogs = (msg: string) => platform.gateway.jsonLogs().filter((l) => l.msg === msg);

/** Requests that reached the agents proxy since `from` and carry `text` (an operation's own field). */
const arrivals = (from: number, text: string) =>
  agentsProxy
    .bodies()
    .slice(from)
    .filter((b) => b.includes(text)).length;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-subgraph-resilience-'));
  const agentsPort = await getFreePort();
  agentsProxy = await startFaultProxy(agentsPort);
  platform = await startPlatform({
    dataDir,
    ports: { agents: agentsPort },
    subgraphUrls: { agents: agentsProxy.url },
    gatewayEnv: {
      SUBGRAPH_TIMEOUT_MS: '10000',
      SUBGRAPH_AGENTS_TIMEOUT_MS: String(AGENTS_TIMEOUT_MS),
      SUBGRAPH_ORCHESTRATION_TIMEOUT_MS: String(ORCHESTRATION_TIMEOUT_MS),
      SUBGRAPH_BREAKER_FAILURES: String(BREAKER_FAILURES),
      SUBGRAPH_BREAKER_HALF_OPEN_MS: '1000',
      SUBGRAPH_RETRIES: String(RETRIES),
      SUBGRAPH_RETRY_DELAY_MS: '10',
    },
  });
  const agent = await gqlOk<{ registerAgent: { id: string } }>(platform.url, `mutation { registerAgent(input: { name: "Steady" }) { id } }`);
  agentId = agent.registerAgent.id;
  const task = await gqlOk<{ submitTask: { id: string } }>(platform.url, `mutation { submitTask(input: { title: "Survive" }) { id } }`);
  taskId = task.submitTask.id;
});

afterAll(async () => {
  await platform?.stop();
  await agentsProxy?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('circuit breaker', () => {
  it('reports every subgraph up on /readyz while all answer', async () => {
    const ready = await readiness();
    expect(ready.status).toBe('ready');
    // The subgraphs this file started answer; the others of the supergraph were never started here.
    expect(ready.checks).toMatchObject({
      'subgraph:agents': 'up: 1/1 replicas healthy',
      'subgraph:orchestration': 'up: 1/1 replicas healthy',
      'subgraph:governance': 'up: 1/1 replicas healthy',
      'subgraph:memory': 'up: 1/1 replicas healthy',
    });
    expect(Object.keys(ready.checks ?? {}).sort()).toEqual(supergraphSubgraphs.map((n) => `subgraph:${n}`).sort());
  });

  it('orchestration killed: refused fetches open the breaker, then fetches fail without being sent; it closes by itself once orchestration is back', async () => {
    const gatewayPid = platform.gateway.pid();
    platform.orchestration.kill('SIGKILL');
    await platform.orchestration.exited();

    const refused = [];
    for (let i = 0; i < BREAKER_FAILURES; i++) refused.push(await gql(platform.url, JOINED, { agentId, taskId }));
    for (const result of refused) {
      expect(result.status).toBe(200);
      // Partial data: agents still answers.
      expect(result.data).toEqual({ agent: { name: 'Steady' }, task: null });
      expect(result.errors).toEqual([
        expect.objectContaining({
          message: `Subgraph "orchestration" is unavailable: connect ECONNREFUSED 127.0.0.1:${platform.orchestration.port}`,
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration' },
        }),
      ]);
    }

    const open = await gql(platform.url, JOINED, { agentId, taskId });
    expect(open.status).toBe(200);
    expect(open.data).toEqual({ agent: { name: 'Steady' }, task: null });
    expect(open.errors).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/^Subgraph "orchestration" is unavailable: circuit breaker open/),
        extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration', reason: 'CIRCUIT_OPEN' },
      }),
    ]);
    expect(gatewayLogs('subgraph circuit breaker open').map((l) => l.subgraph)).toContain('orchestration');
    expect((await readiness()).checks?.['subgraph:orchestration']).toMatch(/^(down: circuit breaker open|recovering: circuit breaker half-open)/);

    await platform.orchestration.restart();
    await expect.poll(async () => (await gql(platform.url, TASK, { id: taskId })).errors, { timeout: 20_000, interval: 200 }).toBeUndefined();
    expect(await gqlOk(platform.url, TASK, { id: taskId })).toEqual({ task: { title: 'Survive' } });
    expect(gatewayLogs('subgraph circuit breaker closed').map((l) => l.subgraph)).toContain('orchestration');
    expect((await readiness()).checks?.['subgraph:orchestration']).toBe('up: 1/1 replicas healthy');
    // Recovered without a gateway restart.
    expect(platform.gateway.pid()).toBe(gatewayPid);
  });

  it('orchestration hung (SIGSTOP): each fetch ends at its own SUBGRAPH_ORCHESTRATION_TIMEOUT_MS, then the open breaker fails them at once', async () => {
    platform.orchestration.kill('SIGSTOP');
    try {
      for (let i = 0; i < BREAKER_FAILURES; i++) {
        const hung = await gql(platform.url, JOINED, { agentId, taskId });
        expect(hung.data).toEqual({ agent: { name: 'Steady' }, task: null });
        expect(hung.errors).toEqual([
          expect.objectContaining({
            message: `Subgraph "orchestration" is unavailable: no response within ${ORCHESTRATION_TIMEOUT_MS} ms`,
            extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration' },
          }),
        ]);
      }
      const open = await gql(platform.url, JOINED, { agentId, taskId });
      expect(open.data).toEqual({ agent: { name: 'Steady' }, task: null });
      expect(open.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration', reason: 'CIRCUIT_OPEN' });
    } finally {
      platform.orchestration.kill('SIGCONT');
    }
    await expect.poll(async () => (await gql(platform.url, TASK, { id: taskId })).errors, { timeout: 20_000, interval: 200 }).toBeUndefined();
  });
});

describe('timeouts and retries', () => {
  it('agents answering 503: once the breaker is open nothing reaches agents; a half-open probe fetch closes it when agents answers', async () => {
    agentsProxy.set({ kind: 'status', status: 503 });
    try {
      for (let i = 0; i < BREAKER_FAILURES; i++) expect((await gql(platform.url, AGENT, { id: agentId })).errors?.[0]?.message).toMatch(/HTTP 503/);
      const from = agentsProxy.bodies().length;
      const open = await gql(platform.url, JOINED, { agentId, taskId });
      expect(open.data).toEqual({ agent: null, task: { title: 'Survive' } });
      expect(open.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents', reason: 'CIRCUIT_OPEN' });
      expect(arrivals(from, 'agent(id:')).toBe(0);
    } finally {
      agentsProxy.set({ kind: 'pass' });
    }
    await expect.poll(async () => (await gql(platform.url, AGENT, { id: agentId })).errors, { timeout: 20_000, interval: 200 }).toBeUndefined();
    expect((await readiness()).checks?.['subgraph:agents']).toBe('up: 1/1 replicas healthy');
  });

  it('agents slow: its fetches end at SUBGRAPH_AGENTS_TIMEOUT_MS with the orchestration data; fine again when it speeds up', async () => {
    agentsProxy.set({ kind: 'delay', ms: AGENTS_TIMEOUT_MS * 3 });
    try {
      const slow = await gql(platform.url, JOINED, { agentId, taskId });
      expect(slow.status).toBe(200);
      expect(slow.data).toEqual({ agent: null, task: { title: 'Survive' } });
      expect(slow.errors).toEqual([
        expect.objectContaining({
          message: `Subgraph "agents" is unavailable: no response within ${AGENTS_TIMEOUT_MS} ms`,
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
        }),
      ]);
    } finally {
      agentsProxy.set({ kind: 'pass' });
    }
    expect(await gqlOk(platform.url, JOINED, { agentId, taskId })).toEqual({ agent: { name: 'Steady' }, task: { title: 'Survive' } });
  });

  it('a query answered 503 is sent again SUBGRAPH_RETRIES times, then reported', async () => {
    const from = agentsProxy.bodies().length;
    agentsProxy.set({ kind: 'status', status: 503 });
    try {
      const failed = await gql(platform.url, AGENT, { id: agentId });
      expect(failed.data).toEqual({ agent: null });
      expect(failed.errors).toEqual([
        expect.objectContaining({
          message: 'Subgraph "agents" is unavailable: HTTP 503 Service Unavailable',
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
        }),
      ]);
    } finally {
      agentsProxy.set({ kind: 'pass' });
    }
    expect(arrivals(from, 'agent(id:')).toBe(1 + RETRIES);
    expect(await gqlOk(platform.url, AGENT, { id: agentId })).toEqual({ agent: { name: 'Steady' } });
  });

  it('a query whose connection drops after the subgraph did the work is sent again: reads are safe to repeat', async () => {
    const from = agentsProxy.bodies().length;
    agentsProxy.set({ kind: 'drop-after-forward' });
    try {
      const dropped = await gql(platform.url, AGENT, { id: agentId });
      expect(dropped.data).toEqual({ agent: null });
      expect(dropped.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' });
    } finally {
      agentsProxy.set({ kind: 'pass' });
    }
    expect(arrivals(from, 'agent(id:')).toBe(1 + RETRIES);
  });

  it('a mutation is never sent twice, with or without an Idempotency-Key: the subgraph committed it once', async () => {
    const variants: Record<string, string>[] = [{}, { 'idempotency-key': randomUUID() }];
    for (const headers of variants) {
      const name = `Once-${randomUUID()}`;
      const from = agentsProxy.bodies().length;
      agentsProxy.set({ kind: 'drop-after-forward' });
      try {
        const dropped = await gql(platform.url, 'mutation($name: String!) { registerAgent(input: { name: $name }) { id } }', { name }, headers);
        expect(dropped.data).toBeNull();
        expect(dropped.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' });
      } finally {
        agentsProxy.set({ kind: 'pass' });
      }
      expect(arrivals(from, 'registerAgent')).toBe(1);
      const registered = await gqlOk<{ agents: { nodes: { name: string }[] } }>(
        platform.url,
        'query($text: String!) { agents(filter: { text: $text }, first: 100) { nodes { name } } }',
        { text: name },
      );
      expect(registered.agents.nodes).toEqual([{ name }]);
    }
  });

  it('a mutation answered 503 is reported, not retried', async () => {
    const from = agentsProxy.bodies().length;
    agentsProxy.set({ kind: 'status', status: 503 });
    try {
      const failed = await gql(platform.url, 'mutation { registerAgent(input: { name: "Never" }) { id } }');
      expect(failed.errors?.[0]).toEqual(
        expect.objectContaining({
          message: 'Subgraph "agents" is unavailable: HTTP 503 Service Unavailable',
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
        }),
      );
    } finally {
      agentsProxy.set({ kind: 'pass' });
    }
    expect(arrivals(from, 'registerAgent')).toBe(1);
  });
});
