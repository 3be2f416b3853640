// The memory subgraph through the gateway, as clients see it: memories joined onto agents and
// tasks of the other subgraphs, the memoryWritten subscription over graphql-ws, and the REST
// routes with their problem+json errors. Every service is its own process on a free port.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk, manageProcesses, startPlatform, withDefaultAuth, type Platform } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, wsClient } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let client: Client;
let base: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-memory-'));
  platform = await startPlatform({ dataDir });
  client = wsClient(platform.url);
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  await client?.dispose();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function rest(method: string, path: string, body?: unknown): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(await withDefaultAuth()) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const REMEMBER = 'mutation($input: RememberInput!) { remember(input: $input) { id namespace text } }';

describe('memory through the gateway', () => {
  it('joins memories onto agents and tasks of the other subgraphs', async () => {
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Rememberer" }) { id } }');
    const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(platform.url, 'mutation { submitTask(input: { title: "Remember things" }) { id } }');
    const agentId = registerAgent.id;
    const taskId = submitTask.id;
    await gqlOk(platform.url, REMEMBER, { input: { namespace: `agents/${agentId}/notes`, text: 'The user prefers short answers', source: { taskId } } });
    await gqlOk(platform.url, REMEMBER, { input: { namespace: 'shared/e2e', text: 'Not the agent’s own' } });

    const { agent } = await gqlOk<{ agent: { name: string; memories: { totalCount: number; nodes: { text: string }[] } } }>(
      platform.url,
      'query($id: ID!) { agent(id: $id) { name memories { totalCount nodes { text } } } }',
      { id: agentId },
    );
    expect(agent).toEqual({ name: 'Rememberer', memories: { totalCount: 1, nodes: [{ text: 'The user prefers short answers' }] } });
    const { task } = await gqlOk<{ task: { title: string; memories: { nodes: { namespace: string }[] } } }>(
      platform.url,
      'query($id: ID!) { task(id: $id) { title memories { nodes { namespace } } } }',
      { id: taskId },
    );
    expect(task).toEqual({ title: 'Remember things', memories: { nodes: [{ namespace: `agents/${agentId}/notes` }] } });
  });

  it('delivers memoryWritten events under the namespace prefix only', async () => {
    const prefix = `shared/sub-${randomUUID().slice(0, 8)}`;
    const before = subgraphOpenSubscriptions(platform.memory).opened;
    const sub = subscribe(client, {
      query: 'subscription($p: String) { memoryWritten(namespacePrefix: $p) { change namespace memory { text } } }',
      variables: { p: prefix },
    });
    await subgraphSubscribed(platform.memory, before);
    // Written first: had it been delivered, it would be the first event.
    await gqlOk(platform.url, REMEMBER, { input: { namespace: 'shared/elsewhere', text: 'elsewhere' } });
    const { remember } = await gqlOk<{ remember: { id: string } }>(platform.url, REMEMBER, { input: { namespace: `${prefix}/a`, text: 'watched' } });
    expect(await sub.next()).toEqual({ data: { memoryWritten: { change: 'REMEMBERED', namespace: `${prefix}/a`, memory: { text: 'watched' } } } });
    await gqlOk(platform.url, 'mutation($id: ID!) { forget(id: $id) }', { id: remember.id });
    expect(await sub.next()).toEqual({ data: { memoryWritten: { change: 'FORGOTTEN', namespace: `${prefix}/a`, memory: null } } });
    sub.unsubscribe();
  });

  it('serves the REST routes, with problem+json errors', async () => {
    const created = await rest('POST', '/v1/memories', { namespace: 'shared/rest', text: 'Invoices are due within 30 days', vector: [0.1, 0.2, 0.3] });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await rest('GET', `/v1/memories/${id}`)).body).toMatchObject({ id, text: 'Invoices are due within 30 days' });
    const patched = await rest('PATCH', `/v1/memories/${id}?expectedVersion=1`, { text: 'Invoices are due within 45 days' });
    expect(patched.body).toMatchObject({ version: 2 });
    const history = await rest('GET', `/v1/memories/${id}/history`);
    expect((history.body as unknown as { version: number }[]).map((v) => v.version)).toEqual([2, 1]);
    const found = await rest('GET', '/v1/memories/search?text=invoices&vector=0.1&vector=0.2&vector=0.3&namespacePrefix=shared/rest');
    expect(found.status).toBe(200);
    expect((found.body as unknown as { mode: string; memory: { id: string } }[])[0]).toMatchObject({ mode: 'HYBRID', memory: { id } });
    const index = await rest('GET', '/v1/memories/vector-index');
    expect(index.status).toBe(200);
    expect(index.body).toMatchObject({ engine: 'hnsw' });
    expect((index.body as unknown as { vectors: number }).vectors).toBeGreaterThanOrEqual(1);

    const wrong = await rest('GET', '/v1/memories/search?vector=1&vector=2');
    expect(wrong.status).toBe(422);
    expect(wrong.type).toContain('application/problem+json');
    expect(wrong.body).toMatchObject({ type: '/problems/dimension-mismatch', code: 'DIMENSION_MISMATCH' });
    const tooLarge = await rest('GET', '/v1/memories/search?text=x&k=500');
    expect(tooLarge.status).toBe(400);
    expect(tooLarge.body).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(JSON.stringify(tooLarge.body)).not.toMatch(/\.ts:\d+|stacktrace/);

    const forgotten = await rest('DELETE', `/v1/memories/${id}`);
    expect(forgotten.status).toBe(200);
    expect((await rest('GET', `/v1/memories/${id}`)).status).toBe(404);
  });
});
