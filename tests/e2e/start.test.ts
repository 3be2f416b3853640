// `npm start` as a newcomer runs it: every subgraph and the gateway on embedded defaults (even
// where CI has PostgreSQL and Redis configured), demo data on first start only, URLs printed,
// Ctrl+C stops cleanly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getFreePort, gqlOk, manageProcesses, startProcess, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

const BANNER = 'Agent platform supergraph is up.';

async function waitForLog(p: ServiceProcess, text: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.logs().includes(text)) {
    if (Date.now() > deadline) throw new Error(`"${text}" not printed in time:\n${p.logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('npm start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'start-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('starts everything on embedded defaults, seeds demo data once, prints the URLs and stops on SIGINT', async () => {
    const [gatewayPort, agentsPort, orchestrationPort] = [await getFreePort(), await getFreePort(), await getFreePort()];
    const env = {
      DATA_DIR: dataDir,
      GATEWAY_PORT: String(gatewayPort),
      AGENTS_PORT: String(agentsPort),
      ORCHESTRATION_PORT: String(orchestrationPort),
      // npm start runs every registered subgraph; a free port keeps parallel runs apart.
      GOVERNANCE_PORT: String(await getFreePort()),
      DATABASE_URL: '',
      REDIS_URL: '',
      LOG_LEVEL: '',
    };
    const start = () => startProcess({ name: 'npm-start', args: ['scripts/start.ts'], port: gatewayPort, env, readyTimeoutMs: 90_000 });

    let p = await start();
    await waitForLog(p, BANNER);
    const banner = p.logs();
    expect(banner).toContain(`http://127.0.0.1:${gatewayPort}/graphql`);
    expect(banner).toContain(`http://127.0.0.1:${agentsPort}/graphql`);
    expect(banner).toContain(`http://127.0.0.1:${orchestrationPort}/graphql`);
    expect(banner).toMatch(/demo data: seeded 5 agents, \d+ tasks, 1 workflow run/);
    expect(banner).toContain(join(dataDir, 'agents.sqlite'));
    // The printed development token and curl example work as they are.
    const printed = /authorization: Bearer ([\w-]+\.[\w-]+\.[\w-]+)/.exec(banner)?.[1];
    expect(printed).toBeDefined();
    const asPrinted = await gqlOk<{ agents: { totalCount: number } }>(`http://127.0.0.1:${gatewayPort}/graphql`, '{ agents { totalCount } }', undefined, { authorization: `Bearer ${printed}` });
    expect(asPrinted.agents.totalCount).toBe(5);

    const url = `http://127.0.0.1:${gatewayPort}/graphql`;
    const data = await gqlOk<{
      agents: { totalCount: number; nodes: { name: string; status: string; tasks: { nodes: { title: string; state: string }[] } }[] };
      tasks: { nodes: { state: string; agent: { name: string } | null }[] };
      workflowRuns: { nodes: { status: string; steps: { stepId: string; status: string }[] }[] };
    }>(
      url,
      `{
        agents(first: 20) { totalCount nodes { name status tasks { nodes { title state } } } }
        tasks(first: 50) { nodes { state agent { name } } }
        workflowRuns { nodes { status steps { stepId status } } }
      }`,
    );
    expect(data.agents.totalCount).toBe(5);
    expect(new Set(data.agents.nodes.map((a) => a.status))).toEqual(new Set(['ACTIVE', 'PAUSED', 'RETIRED']));
    const states = new Set(data.tasks.nodes.map((t) => t.state));
    for (const s of ['SUBMITTED', 'WORKING', 'COMPLETED', 'FAILED', 'CANCELED']) expect(states).toContain(s);
    // The join across subgraphs, both ways.
    const writer = data.agents.nodes.find((a) => a.name === 'Draft Writer');
    expect(writer?.tasks.nodes.map((t) => t.title)).toContain('Draft launch blog post');
    expect(data.tasks.nodes.some((t) => t.agent?.name === 'Research Scout')).toBe(true);
    expect(data.workflowRuns.nodes[0]?.status).toBe('RUNNING');
    expect(data.workflowRuns.nodes[0]?.steps.find((s) => s.stepId === 'research')?.status).toBe('RUNNING');

    p.kill('SIGINT');
    expect((await p.exited()).code).toBe(0);

    // Second start on the same data: nothing seeded twice.
    p = await start();
    await waitForLog(p, BANNER);
    expect(p.logs()).toContain('demo data: already present (5 agents), not seeded again');
    const again = await gqlOk<{ agents: { totalCount: number } }>(url, '{ agents { totalCount } }');
    expect(again.agents.totalCount).toBe(5);
    p.kill('SIGTERM');
    expect((await p.exited()).code).toBe(0);
  });
});
