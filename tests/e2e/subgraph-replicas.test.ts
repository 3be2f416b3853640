// Two replicas of the agents subgraph behind one gateway (SUBGRAPH_AGENTS_URL lists both): the
// gateway spreads queries over them, and when one is killed under load no query fails (each is
// retried on the other); restarted, it is probed back and takes traffic again.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { dropSchema } from '../support/databases.ts';
import { getFreePort, gql, gqlOk, manageProcesses, startPlatform, startProcess, type Platform, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let replicaB: ServiceProcess;
let agentId: string;
// Both replicas use the same database schemas (PostgreSQL) and event channels (Redis).
const isolation = `e2erep${randomBytes(4).toString('hex')}_`;

const AGENT = 'query Agent($id: ID!) { agent(id: $id) { name } }';
const graphqlRequests = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;

async function agentsState(): Promise<string | undefined> {
  const res = await fetch(`http://127.0.0.1:${platform.gateway.port}/readyz`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { checks?: Record<string, string> }).checks?.['subgraph:agents'];
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-replicas-'));
  const portA = await getFreePort();
  const portB = await getFreePort();
  platform = await startPlatform({
    dataDir,
    env: { DATABASE_SCHEMA_PREFIX: isolation, EVENT_CHANNEL_PREFIX: isolation },
    ports: { agents: portA },
    subgraphUrls: { agents: `http://127.0.0.1:${portA}/graphql,http://127.0.0.1:${portB}/graphql` },
    gatewayEnv: { SUBGRAPH_PROBE_MS: '200', SUBGRAPH_EJECT_FAILURES: '2', SUBGRAPH_RETRIES: '2', SUBGRAPH_TIMEOUT_MS: '10000' },
  });
  replicaB = await startProcess({
    name: 'agents-b',
    args: ['scripts/subgraph.ts', 'agents'],
    port: portB,
    env: {
      DATA_DIR: dataDir,
      DATABASE_SCHEMA_PREFIX: isolation,
      EVENT_CHANNEL_PREFIX: isolation,
      LOG_LEVEL: 'info',
      ...TEST_SECURITY_ENV,
      AGENTS_PORT: String(portB),
      SUBGRAPH_GOVERNANCE_URL: platform.governance.url,
    },
  });
  const agent = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Twin" }) { id } }');
  agentId = agent.registerAgent.id;
});

afterAll(async () => {
  await replicaB?.stop();
  await platform?.stop();
  if (process.env.DATABASE_URL) for (const name of ['agents', 'orchestration', 'governance']) await dropSchema(`${isolation}${name}`);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Clients sending the same query back to back until stopped; every answer that is not complete data is kept. */
function load(workers: number) {
  let running = true;
  let done = 0;
  const failures: unknown[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const result = await gql(platform.url, AGENT, { id: agentId }).catch((err: unknown) => ({ status: 0, data: null, errors: [String(err)] }));
      if (result.status !== 200 || result.errors || JSON.stringify(result.data) !== '{"agent":{"name":"Twin"}}') failures.push(result);
      done++;
    }
  });
  return {
    done: () => done,
    async stop() {
      running = false;
      await Promise.all(loops);
      return failures;
    },
  };
}

describe('replicas of a subgraph', () => {
  it('spreads queries over both replicas', async () => {
    // B may have been ejected while it was starting; it is probed back within SUBGRAPH_PROBE_MS.
    await expect.poll(agentsState, { timeout: 15_000 }).toBe('up: 2/2 replicas healthy');
    const beforeA = graphqlRequests(platform.agents);
    const beforeB = graphqlRequests(replicaB);
    for (let i = 0; i < 20; i++) await gqlOk(platform.url, AGENT, { id: agentId });
    expect(graphqlRequests(platform.agents)).toBeGreaterThan(beforeA);
    expect(graphqlRequests(replicaB)).toBeGreaterThan(beforeB);
  });

  it('one replica killed under load: no query fails; restarted, it is probed back and takes traffic again', async () => {
    const traffic = load(4);
    try {
      await expect.poll(traffic.done, { timeout: 15_000 }).toBeGreaterThan(20);
      replicaB.kill('SIGKILL');
      await replicaB.exited();
      await expect
        .poll(() => platform.gateway.jsonLogs().some((l) => l.msg === 'subgraph replica ejected' && l.url === replicaB.url), { timeout: 15_000 })
        .toBe(true);
      const afterEjection = traffic.done();
      await expect.poll(traffic.done, { timeout: 15_000 }).toBeGreaterThan(afterEjection + 40);
      expect(await agentsState()).toBe('degraded: 1/2 replicas healthy');

      await replicaB.restart();
      await expect
        .poll(() => platform.gateway.jsonLogs().some((l) => l.msg === 'subgraph replica answers again' && l.url === replicaB.url), { timeout: 15_000 })
        .toBe(true);
      const readmitted = graphqlRequests(replicaB);
      await expect.poll(() => graphqlRequests(replicaB), { timeout: 15_000 }).toBeGreaterThan(readmitted + 5);
    } finally {
      const failures = await traffic.stop();
      expect(failures).toEqual([]);
    }
    expect(traffic.done()).toBeGreaterThan(60);
    expect(await agentsState()).toBe('up: 2/2 replicas healthy');
  });
});
