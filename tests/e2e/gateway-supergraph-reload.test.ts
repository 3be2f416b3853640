// The gateway serves a supergraph file and follows it: a changed file is swapped in without a
// restart and without failing the requests sent meanwhile; an invalid file is ignored.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { gql, gqlOk, manageProcesses, startPlatform, type GqlResult, type Platform } from '../support/processes.ts';

manageProcesses();

const original = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8');
const ORIGINAL_DESCRIPTION = 'One agent, or null when there is none with this id.';
const ACTIVE_TASK_COUNT = '  activeTaskCount: Int! @join__field(graph: ORCHESTRATION) @requiresScopes(scopes: [["tasks:read"]])\n';

let dir: string;
let supergraphPath: string;
let platform: Platform;
let gatewayPid: number | undefined;

const INTROSPECT = `{ __type(name: "Query") { fields { name description } } agentType: __type(name: "Agent") { fields { name } } }`;

async function schemaView(): Promise<{ agentDescription: string | null | undefined; agentFields: string[] }> {
  const data = await gqlOk<{ __type: { fields: { name: string; description: string | null }[] }; agentType: { fields: { name: string }[] } }>(
    platform.url,
    INTROSPECT,
  );
  return {
    agentDescription: data.__type.fields.find((f) => f.name === 'agent')?.description,
    agentFields: data.agentType.fields.map((f) => f.name),
  };
}

/** Three clients sending the join query back to back until stopped; returns every result. */
function keepQuerying(): { count(): number; stop(): Promise<GqlResult[]> } {
  const results: GqlResult[] = [];
  let running = true;
  const client = async () => {
    while (running) results.push(await gql(platform.url, `{ agents { nodes { name tasks { nodes { title state } } } } }`));
  };
  const clients = [client(), client(), client()];
  return {
    count: () => results.length,
    async stop() {
      running = false;
      await Promise.all(clients);
      return results;
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-reload-'));
  supergraphPath = join(dir, 'supergraph.graphql');
  copyFileSync(DEFAULT_SUPERGRAPH_PATH, supergraphPath);
  platform = await startPlatform({ dataDir: dir, gatewayEnv: { SUPERGRAPH_PATH: supergraphPath, SUPERGRAPH_POLL_MS: '250' } });
  gatewayPid = platform.gateway.pid();
  const agent = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    `mutation { registerAgent(input: { name: "Reloader", skills: [{ id: "x", name: "X", tags: ["x"] }] }) { id } }`,
  );
  await gqlOk(platform.url, `mutation { submitTask(input: { title: "Keep going", requiredSkillTags: ["x"] }) { id } }`);
  await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: agent.registerAgent.id });
  await gqlOk(platform.url, `mutation($id: ID!) { claimTask(agentId: $id, skillTags: ["x"]) { id } }`, { id: agent.registerAgent.id });
});

afterAll(async () => {
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('supergraph file reload', () => {
  it('swaps in a changed supergraph without a restart and without failing requests sent during the swap', async () => {
    expect(await schemaView()).toEqual({ agentDescription: ORIGINAL_DESCRIPTION, agentFields: expect.arrayContaining(['activeTaskCount']) });
    expect(original).toContain(ACTIVE_TASK_COUNT);
    // Drop the field together with its description block.
    const changed = original
      .replace(ORIGINAL_DESCRIPTION, 'Looks up one agent by id.')
      .replace(/(\n *"""(?:(?!""")[\s\S])*""")?\n *activeTaskCount: Int! @join__field\(graph: ORCHESTRATION\)[^\n]*\n/, '\n');
    expect(changed).not.toContain('activeTaskCount');
    expect(changed).not.toContain('Tasks ASSIGNED to, WORKING on');

    const load = keepQuerying();
    await new Promise((resolve) => setTimeout(resolve, 300));
    writeFileSync(supergraphPath, changed);
    await expect.poll(async () => (await schemaView()).agentDescription, { timeout: 15_000, interval: 100 }).toBe('Looks up one agent by id.');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Enough traffic around the swap however loaded the machine is (the whole suite runs in parallel).
    await expect.poll(() => load.count(), { timeout: 15_000 }).toBeGreaterThan(30);
    const results = await load.stop();

    expect(results.length).toBeGreaterThan(30);
    const failed = results.filter((r) => r.status !== 200 || r.errors !== undefined);
    expect(failed).toEqual([]);
    for (const r of results)
      expect(r.data).toEqual({ agents: { nodes: [{ name: 'Reloader', tasks: { nodes: [{ title: 'Keep going', state: 'ASSIGNED' }] } }] } });

    // The removed field is gone from the served schema, and queries for it are now invalid.
    expect((await schemaView()).agentFields).not.toContain('activeTaskCount');
    const removed = await gql(platform.url, `{ agents { nodes { activeTaskCount } } }`);
    expect(removed.status).toBe(400);
    expect(removed.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

    expect(platform.gateway.pid()).toBe(gatewayPid);
    expect(platform.gateway.jsonLogs().filter((l) => l.msg === 'supergraph reloaded')).toHaveLength(1);
  });

  it('ignores an invalid supergraph file: logged, and the current schema keeps serving', async () => {
    const before = await schemaView();
    writeFileSync(
      supergraphPath,
      original.replace(ACTIVE_TASK_COUNT, '  activeTaskCount: Int! @join__field(graph: NOWHERE) @requiresScopes(scopes: [["tasks:read"]])\n'),
    );
    await expect
      .poll(() => platform.gateway.jsonLogs().filter((l) => l.msg === 'supergraph file rejected; still serving the current schema'), { timeout: 15_000 })
      .toEqual([expect.objectContaining({ level: 50, path: supergraphPath, reason: expect.stringMatching(/NOWHERE/) })]);

    writeFileSync(supergraphPath, 'this is not GraphQL');
    await expect
      .poll(() => platform.gateway.jsonLogs().filter((l) => l.msg === 'supergraph file rejected; still serving the current schema').length, { timeout: 15_000 })
      .toBe(2);

    expect(await schemaView()).toEqual(before);
    expect(await gqlOk(platform.url, `{ agents { nodes { name } } }`)).toEqual({ agents: { nodes: [{ name: 'Reloader' }] } });
    const ready = await fetch(`http://127.0.0.1:${platform.gateway.port}/readyz`);
    expect(ready.status).toBe(200);

    // Fixing the file brings the next version in.
    writeFileSync(supergraphPath, original);
    await expect.poll(async () => (await schemaView()).agentFields, { timeout: 15_000 }).toContain('activeTaskCount');
    expect(await gqlOk(platform.url, `{ agents { nodes { name activeTaskCount } } }`)).toEqual({
      agents: { nodes: [{ name: 'Reloader', activeTaskCount: 1 }] },
    });
    expect(platform.gateway.pid()).toBe(gatewayPid);
  });
});
