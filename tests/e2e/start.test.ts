// `npm start` as a newcomer runs it: every subgraph and the gateway on embedded defaults (even
// where CI has PostgreSQL and Redis configured), demo data on first start only, URLs printed,
// Ctrl+C stops cleanly.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
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

/** The curl commands printed after `npm start`'s output since `from`, each as its lines. */
function printedCurls(p: ServiceProcess, from = 0): string[] {
  const lines = p
    .logs()
    .slice(from)
    .split('\n')
    .map((l) => l.replace(/^\[npm-start out\] /, ''));
  const commands: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+(try: )?curl /.test(lines[i]!)) continue;
    const command: string[] = [];
    for (; i < lines.length; i++) {
      command.push(lines[i]!.replace(/^\s+try: /, ''));
      if (!lines[i]!.endsWith('\\')) break;
    }
    commands.push(command.join('\n'));
  }
  return commands;
}

/** Runs a printed command as a user pasting it into a shell would; its output parsed as JSON. */
async function runPrinted(command: string): Promise<{ data?: Record<string, unknown> | null; errors?: { message: string }[] }> {
  const { stdout } = await promisify(execFile)('sh', ['-c', command]);
  return JSON.parse(stdout) as { data?: Record<string, unknown> | null; errors?: { message: string }[] };
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
      MEMORY_PORT: String(await getFreePort()),
      INTEGRATIONS_PORT: String(await getFreePort()),
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
    // Every way in: WebSocket and SSE subscriptions, REST and its docs, the start page.
    expect(banner).toContain(`ws://127.0.0.1:${gatewayPort}/graphql (graphql-ws)`);
    expect(banner).toContain(`http://127.0.0.1:${gatewayPort}/graphql/stream (SSE)`);
    expect(banner).toContain(`http://127.0.0.1:${gatewayPort}/docs (Swagger UI)`);
    expect(banner).toContain(`http://127.0.0.1:${gatewayPort}/openapi.json`);
    expect(banner).toMatch(/demo data: seeded 5 agents, \d+ tasks, 1 workflow run, 4 memories/);
    expect(banner).toMatch(/subgraph memory +http:\/\/127\.0\.0\.1:\d+\/graphql/);
    expect(banner).toContain(join(dataDir, 'agents.sqlite'));
    // The printed development token and curl example work as they are.
    const printed = /authorization: Bearer ([\w-]+\.[\w-]+\.[\w-]+)/.exec(banner)?.[1];
    expect(printed).toBeDefined();
    const asPrinted = await gqlOk<{ agents: { totalCount: number } }>(`http://127.0.0.1:${gatewayPort}/graphql`, '{ agents { totalCount } }', undefined, {
      authorization: `Bearer ${printed}`,
    });
    expect(asPrinted.agents.totalCount).toBe(5);

    // A demo agent's credential is printed, with requests made as that agent: the heartbeat works
    // as printed; the claim names no agent (the credential says which).
    const key = /agent credential of the demo agent "Code Reviewer" \([0-9a-f-]+\), shown only now[^\n]*\n[^\n]*(ap_[0-9a-f]{16}_[\w-]{43})/.exec(banner)?.[1];
    expect(key).toBeDefined();
    const [, heartbeat, claim] = printedCurls(p);
    expect(heartbeat).toContain(`-H 'x-api-key: ${key}'`);
    const beat = await runPrinted(heartbeat!);
    expect(beat.errors).toBeUndefined();
    expect(beat.data?.recordHeartbeat).toMatchObject({ name: 'Code Reviewer', health: 'HEALTHY' });
    expect(claim).toContain(`-H 'x-api-key: ${key}'`);
    expect(claim).toContain('claimTask(skillTags: [\\"review\\"])');
    expect(claim).not.toContain('agentId');

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

    // The demo memories are found by words, and joined onto their agent.
    const memories = await gqlOk<{ searchMemories: { mode: string; memory: { namespace: string } }[] }>(
      url,
      '{ searchMemories(input: { text: "primary sources" }) { mode memory { namespace } } }',
    );
    expect(memories.searchMemories[0]).toMatchObject({ mode: 'LEXICAL', memory: { namespace: expect.stringMatching(/^agents\/.+\/notes$/) } });

    // The printed claim works as printed: the credential is the agent, which gets its review task.
    const claimed = await runPrinted(claim!);
    expect(claimed.errors).toBeUndefined();
    expect(claimed.data?.claimTask).toMatchObject({ title: 'Review PR #42' });

    p.kill('SIGINT');
    expect((await p.exited()).code).toBe(0);

    // Second start on the same data: nothing seeded twice.
    p = await start();
    await waitForLog(p, BANNER);
    expect(p.logs()).toContain('demo data: already present (5 agents), not seeded again');
    // The key is not known any more: the example acts as the agent with an agent token instead.
    const [, heartbeatAgain] = printedCurls(p);
    expect(heartbeatAgain).toContain("-H 'authorization: Bearer ");
    expect((await runPrinted(heartbeatAgain!)).data?.recordHeartbeat).toMatchObject({ name: 'Code Reviewer' });
    const again = await gqlOk<{ agents: { totalCount: number } }>(url, '{ agents { totalCount } }');
    expect(again.agents.totalCount).toBe(5);
    p.kill('SIGTERM');
    expect((await p.exited()).code).toBe(0);
  });
});
