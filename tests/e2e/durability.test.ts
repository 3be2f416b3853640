// A write the API acknowledged survives the process being killed outright (SIGKILL: no shutdown
// hooks, no flush) and restarted, on whichever database the suite runs against.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gqlOk, manageProcesses, startPlatform } from '../support/processes.ts';

manageProcesses();

describe('durability', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'durable-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it(`keeps acknowledged writes across SIGKILL and restart (${process.env.DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, async () => {
    const platform = await startPlatform({ dataDir });
    try {
      const written: { agentIds: string[]; taskIds: string[] } = { agentIds: [], taskIds: [] };
      for (let i = 0; i < 20; i++) {
        const a = await gqlOk<{ registerAgent: { id: string } }>(
          platform.url,
          'mutation ($name: String!) { registerAgent(input: { name: $name, skills: [{ id: "s", name: "S", tags: ["t"] }] }) { id } }',
          { name: `durable-${i}` },
        );
        written.agentIds.push(a.registerAgent.id);
        // Only an ACTIVE agent claims.
        await gqlOk(platform.url, 'mutation ($id: ID!) { activateAgent(id: $id) { id } }', { id: a.registerAgent.id });
        const t = await gqlOk<{ submitTask: { id: string } }>(platform.url, 'mutation ($title: String!) { submitTask(input: { title: $title }) { id } }', {
          title: `job-${i}`,
        });
        written.taskIds.push(t.submitTask.id);
      }
      // The last write was acknowledged; kill without warning right after.
      const claimed = await gqlOk<{ claimTask: { id: string; state: string } }>(
        platform.url,
        'mutation ($a: ID!) { claimTask(agentId: $a, skillTags: ["t"], leaseSeconds: 600) { id state } }',
        { a: written.agentIds[0] },
      );
      platform.agents.kill('SIGKILL');
      platform.orchestration.kill('SIGKILL');
      expect((await platform.agents.exited()).signal).toBe('SIGKILL');
      expect((await platform.orchestration.exited()).signal).toBe('SIGKILL');

      await platform.agents.restart();
      await platform.orchestration.restart();
      const after = await gqlOk<{
        agents: { totalCount: number; nodes: { id: string }[] };
        tasks: { totalCount: number };
        task: { state: string; agent: { id: string } };
      }>(
        platform.url,
        'query ($id: ID!) { agents(first: 100) { totalCount nodes { id } } tasks(first: 1) { totalCount } task(id: $id) { state agent { id } } }',
        { id: claimed.claimTask.id },
      );
      expect(after.agents.totalCount).toBe(20);
      expect(new Set(after.agents.nodes.map((n) => n.id))).toEqual(new Set(written.agentIds));
      expect(after.tasks.totalCount).toBe(20);
      expect(after.task).toEqual({ state: 'ASSIGNED', agent: { id: written.agentIds[0] } });
    } finally {
      await platform.stop();
    }
  });
});
