// The knowledge graph of the memory subgraph through the gateway, as clients see it: entities and
// relations written in batches, read as of a time, expanded and searched for paths, joined onto
// memories and agents, the graphChanged subscription, and the REST routes with their problems.
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
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-memory-graph-'));
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

const UPSERT = 'mutation($inputs: [EntityInput!]!) { upsertEntities(inputs: $inputs) { id key version } }';
const RELATE = 'mutation($inputs: [RelationInput!]!) { upsertRelations(inputs: $inputs) { id validFrom validTo } }';

describe('the knowledge graph through the gateway', () => {
  it('writes entities and relations, reads them as of a time, expands and finds paths, joins memories and agents', async () => {
    const t = randomUUID().slice(0, 8);
    const { remember } = await gqlOk<{ remember: { id: string } }>(platform.url, 'mutation($input: RememberInput!) { remember(input: $input) { id } }', {
      input: { namespace: 'shared/e2e-graph', text: 'billing depends on postgres' },
    });
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Grapher" }) { id } }');
    await gqlOk(platform.url, UPSERT, {
      inputs: [
        { type: 'Service', key: `billing-${t}`, name: 'Billing', memoryIds: [remember.id] },
        { type: 'Service', key: `postgres-${t}`, name: 'Postgres', memoryIds: [remember.id] },
        { type: 'Service', key: `web-${t}`, namespace: `agents/${registerAgent.id}/graph` },
      ],
    });
    const ref = (key: string) => ({ type: 'Service', key: `${key}-${t}` });
    const [first] = (
      await gqlOk<{ upsertRelations: { id: string; validFrom: string }[] }>(platform.url, RELATE, {
        inputs: [
          { type: 'DEPENDS_ON', source: ref('web'), target: ref('billing') },
          { type: 'DEPENDS_ON', source: ref('billing'), target: ref('postgres'), properties: { pool: 5 } },
        ],
      })
    ).upsertRelations;
    const before = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    await gqlOk(platform.url, RELATE, { inputs: [{ type: 'DEPENDS_ON', source: ref('billing'), target: ref('postgres'), properties: { pool: 20 } }] });

    const byKey = `query($k: String!, $asOf: DateTime) { entityByKey(type: "Service", key: $k) {
      name relations(direction: OUT, asOf: $asOf) { properties target { name } } neighbours(direction: IN) { name }
      memories { text } } }`;
    const now = await gqlOk<{ entityByKey: unknown }>(platform.url, byKey, { k: `billing-${t}` });
    expect(now.entityByKey).toEqual({
      name: 'Billing',
      relations: [{ properties: { pool: 20 }, target: { name: 'Postgres' } }],
      neighbours: [{ name: `web-${t}` }],
      memories: [{ text: 'billing depends on postgres' }],
    });
    const then = await gqlOk<{ entityByKey: { relations: unknown[] } }>(platform.url, byKey, { k: `billing-${t}`, asOf: before });
    expect(then.entityByKey.relations).toEqual([{ properties: { pool: 5 }, target: { name: 'Postgres' } }]);

    const { expandGraph } = await gqlOk<{ expandGraph: { truncated: boolean; nodes: { depth: number; entity: { name: string } }[]; edges: unknown[] } }>(
      platform.url,
      'query($from: [EntityRefInput!]!) { expandGraph(input: { from: $from, depth: 2, direction: OUT }) { truncated nodes { depth entity { name } } edges { id } } }',
      { from: [ref('web')] },
    );
    expect(expandGraph.nodes.map((n) => [n.entity.name, n.depth])).toEqual([
      [`web-${t}`, 0],
      ['Billing', 1],
      ['Postgres', 2],
    ]);
    expect(expandGraph).toMatchObject({ truncated: false, edges: [{}, {}] });
    const { shortestPath } = await gqlOk<{ shortestPath: { length: number; nodes: { name: string }[]; edges: { id: string }[] } }>(
      platform.url,
      'query($from: EntityRefInput!, $to: EntityRefInput!) { shortestPath(input: { from: $from, to: $to }) { length nodes { name } edges { id } } }',
      { from: ref('web'), to: ref('postgres') },
    );
    expect(shortestPath.length).toBe(2);
    expect(shortestPath.nodes.map((n) => n.name)).toEqual([`web-${t}`, 'Billing', 'Postgres']);
    expect(shortestPath.edges[0]?.id).toBe(first?.id);

    const { memory } = await gqlOk<{ memory: { entities: { name: string }[] } }>(platform.url, 'query($id: ID!) { memory(id: $id) { entities { name } } }', {
      id: remember.id,
    });
    expect(memory.entities.map((e) => e.name).sort()).toEqual(['Billing', 'Postgres']);
    const { agent } = await gqlOk<{ agent: { name: string; knowledge: { key: string }[] } }>(
      platform.url,
      'query($id: ID!) { agent(id: $id) { name knowledge { key } } }',
      { id: registerAgent.id },
    );
    expect(agent).toEqual({ name: 'Grapher', knowledge: [{ key: `web-${t}` }] });
  });

  it('delivers graphChanged events for one entity type only', async () => {
    const type = `Team${randomUUID().slice(0, 8).replace(/-/g, '')}`;
    const before = subgraphOpenSubscriptions(platform.memory).opened;
    const sub = subscribe(client, {
      query: 'subscription($type: String) { graphChanged(entityType: $type) { change entityTypes entityId } }',
      variables: { type },
    });
    await subgraphSubscribed(platform.memory, before);
    // Written first: had it been delivered, it would be the first event.
    await gqlOk(platform.url, UPSERT, { inputs: [{ type: 'Other', key: randomUUID() }] });
    const { upsertEntities } = await gqlOk<{ upsertEntities: { id: string }[] }>(platform.url, UPSERT, { inputs: [{ type, key: 'ops' }] });
    expect(await sub.next()).toEqual({ data: { graphChanged: { change: 'ENTITY_UPSERTED', entityTypes: [type], entityId: upsertEntities[0]?.id } } });
    sub.unsubscribe();
  });

  it('serves the REST routes, with problem+json errors past the bounds', async () => {
    const t = randomUUID().slice(0, 8);
    const created = await rest('POST', '/v1/entities/batch', {
      inputs: [
        { type: 'Repo', key: `a-${t}` },
        { type: 'Repo', key: `b-${t}` },
      ],
    });
    expect(created.status).toBe(201);
    const [a, b] = created.body as unknown as { id: string }[];
    const related = await rest('POST', '/v1/relations/batch', {
      inputs: [{ type: 'FORK_OF', source: { id: b?.id }, target: { type: 'Repo', key: `a-${t}` } }],
    });
    expect(related.status).toBe(201);
    expect((await rest('GET', `/v1/entity-keys/Repo/b-${t}`)).body).toMatchObject({ id: b?.id, relations: [{ type: 'FORK_OF', targetId: a?.id }] });
    const expanded = await rest('GET', `/v1/graph/expand?fromType=Repo&fromKey=a-${t}&depth=1`);
    expect(expanded.status).toBe(200);
    expect((expanded.body.nodes as unknown[]).length).toBe(2);
    const path = await rest('GET', `/v1/graph/shortest-path?fromId=${a?.id}&toId=${b?.id}`);
    expect(path.status).toBe(404);
    expect((await rest('GET', `/v1/graph/shortest-path?fromId=${a?.id}&toId=${b?.id}&direction=IN`)).body).toMatchObject({ length: 1 });

    const tooDeep = await rest('GET', `/v1/graph/expand?fromId=${a?.id}&depth=9`);
    expect(tooDeep.status).toBe(422);
    expect(tooDeep.type).toContain('application/problem+json');
    expect(tooDeep.body).toMatchObject({ type: '/problems/graph-limit-exceeded', code: 'GRAPH_LIMIT_EXCEEDED' });
    const busy = await rest('DELETE', `/v1/entities/${a?.id}`);
    expect(busy.status).toBe(409);
    expect((await rest('DELETE', `/v1/entities/${a?.id}?cascade=true`)).body).toBe(true);
    expect((await rest('GET', `/v1/entities/${a?.id}`)).status).toBe(404);
  });
});
