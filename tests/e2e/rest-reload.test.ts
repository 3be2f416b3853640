// The REST routes and the served document follow the supergraph the gateway serves: when the file
// changes, both are rebuilt from the new schema; a route whose operation no longer fits answers
// 503 with the reason in the log, while the other routes keep working.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { manageProcesses, startPlatform, type Platform } from '../support/processes.ts';
import { asProblem, rest, type OpenApiDoc } from '../rest/client.ts';

manageProcesses();

const OLD_DESCRIPTION = 'One agent, or null when there is none with this id.';
const NEW_DESCRIPTION = 'Looks up one agent by id.';
const HEARTBEAT =
  /\n *"""Records that the agent is alive now\. Does not change version\."""\n *recordHeartbeat\(id: ID!\): Agent! @join__field\(graph: AGENTS\)[^\n]*\n/;

let dir: string;
let supergraphPath: string;
let platform: Platform;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-rest-reload-'));
  supergraphPath = join(dir, 'supergraph.graphql');
  copyFileSync(DEFAULT_SUPERGRAPH_PATH, supergraphPath);
  platform = await startPlatform({ dataDir: dir, gatewayEnv: { SUPERGRAPH_PATH: supergraphPath, SUPERGRAPH_POLL_MS: '250' } });
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const getAgentDescription = async () => {
  const doc = (await rest(base, 'GET', '/openapi.json')).body as OpenApiDoc & { paths: Record<string, Record<string, { description?: string }>> };
  return doc.paths['/v1/agents/{id}']?.get?.description ?? '';
};

describe('REST after a supergraph reload', () => {
  it('regenerates the document and disables only the routes that no longer fit', async () => {
    const agent = (await rest(base, 'POST', '/v1/agents', { body: { name: 'Reloaded' } })).body as { id: string };
    expect((await rest(base, 'POST', `/v1/agents/${agent.id}/heartbeat`)).status).toBe(200);
    expect(await getAgentDescription()).toContain(OLD_DESCRIPTION);

    const original = readFileSync(supergraphPath, 'utf8');
    const changed = original.replace(`"""${OLD_DESCRIPTION}"""`, `"""${NEW_DESCRIPTION}"""`).replace(HEARTBEAT, '\n');
    expect(changed).not.toContain('recordHeartbeat');
    expect(changed).toContain(NEW_DESCRIPTION);
    writeFileSync(supergraphPath, changed);

    await expect.poll(getAgentDescription, { timeout: 15_000, interval: 100 }).toContain(NEW_DESCRIPTION);
    const doc = (await rest(base, 'GET', '/openapi.json')).body as OpenApiDoc;
    expect(doc.paths['/v1/agents/{id}/heartbeat']).toBeUndefined();
    expect(doc.paths['/v1/agents/{id}/activate']).toBeDefined();

    const heartbeat = await rest(base, 'POST', `/v1/agents/${agent.id}/heartbeat`);
    expect(heartbeat.status).toBe(503);
    expect(asProblem(heartbeat)).toMatchObject({ code: 'ROUTE_UNAVAILABLE', detail: expect.stringContaining('POST /v1/agents/{id}/heartbeat is unavailable') });
    // The log reaches the test through the process's stdout pipe, possibly after the response.
    const logged = () => platform.gateway.jsonLogs().find((l) => l.msg === 'REST route does not fit the loaded supergraph')?.reasons;
    await expect.poll(logged, { timeout: 5_000 }).toEqual([expect.stringContaining('Cannot query field "recordHeartbeat" on type "Mutation"')]);

    expect((await rest(base, 'POST', `/v1/agents/${agent.id}/activate`)).status).toBe(200);
    expect((await rest(base, 'GET', `/v1/agents/${agent.id}`)).body).toMatchObject({ status: 'ACTIVE' });

    // Restoring the file brings the route back.
    writeFileSync(supergraphPath, original);
    await expect.poll(async () => (await rest(base, 'POST', `/v1/agents/${agent.id}/heartbeat`)).status, { timeout: 15_000, interval: 100 }).toBe(200);
  });
});
