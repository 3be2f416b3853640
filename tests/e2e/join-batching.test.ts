// No N+1 across the graph: a 50-agent list joined with each agent's tasks and active count costs
// one request to each subgraph, whatever the number of agents (counted from the subgraphs' own
// access logs, by request id), and a handful of SQL statements inside orchestration.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk, manageProcesses, startPlatform, type Platform, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-batching-'));
  platform = await startPlatform({ dataDir });
  for (let i = 0; i < 50; i++) {
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
      platform.url,
      'mutation ($name: String!, $tag: String!) { registerAgent(input: { name: $name, skills: [{ id: "s", name: "S", tags: [$tag] }] }) { id } }',
      { name: `worker-${String(i).padStart(2, '0')}`, tag: `tag-${i}` },
    );
    await gqlOk(platform.url, 'mutation ($t: String!, $tag: String!) { submitTask(input: { title: $t, requiredSkillTags: [$tag] }) { id } }', {
      t: `job-${i}`,
      tag: `tag-${i}`,
    });
    await gqlOk(platform.url, 'mutation ($a: ID!) { activateAgent(id: $a) { id } }', { a: registerAgent.id });
    await gqlOk(platform.url, 'mutation ($a: ID!, $tag: String!) { claimTask(agentId: $a, skillTags: [$tag]) { id } }', {
      a: registerAgent.id,
      tag: `tag-${i}`,
    });
  }
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const requestsWithId = (p: ServiceProcess, requestId: string) =>
  p.jsonLogs().filter((l) => l.msg === 'request' && l.requestId === requestId && l.path === '/graphql').length;

describe('joins are batched', () => {
  it('fetches 50 agents with their tasks in one request per subgraph', async () => {
    const requestId = 'batching-50-agents';
    const data = await gqlOk<{
      agents: { nodes: { name: string; activeTaskCount: number; tasks: { totalCount: number; nodes: { title: string; state: string }[] } }[] };
    }>(platform.url, '{ agents(first: 50) { nodes { name activeTaskCount tasks(first: 5) { totalCount nodes { title state } } } } }', undefined, {
      'x-request-id': requestId,
    });
    expect(data.agents.nodes).toHaveLength(50);
    for (const agent of data.agents.nodes) {
      const i = Number(agent.name.slice('worker-'.length));
      expect(agent.activeTaskCount).toBe(1);
      expect(agent.tasks).toEqual({ totalCount: 1, nodes: [{ title: `job-${i}`, state: 'ASSIGNED' }] });
    }
    // The access log line is written when the response finishes: poll briefly.
    const deadline = Date.now() + 5000;
    while (requestsWithId(platform.orchestration, requestId) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(requestsWithId(platform.agents, requestId)).toBe(1);
    expect(requestsWithId(platform.orchestration, requestId)).toBe(1);
  });
});
