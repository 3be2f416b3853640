import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DomainEvent } from '../../runtime/events.ts';
import { developmentIdentity, type RequestIdentity } from '../../runtime/identity.ts';
import {
  normaliseEntities,
  normaliseEntitySearch,
  normaliseExpand,
  normalisePath,
  normaliseRelations,
  type GraphEventPayload,
} from '../../subgraphs/memory/graph/domain.ts';
import { GraphStore, type GraphDB } from '../../subgraphs/memory/graph/store.ts';
import { migrations } from '../../subgraphs/memory/migrations.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';

const allowed = () => {};
const [m1, m2, m3] = [randomUUID(), randomUUID(), randomUUID()];

describe.each(backends)('knowledge graph store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<GraphDB>;
    beforeAll(async () => {
      t = await openTestDatabase<GraphDB>(backend, 'memgraph', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup() {
      const clock = manualClock();
      const store = new GraphStore(t.database, t.bus, t.logger, clock.now);
      const tenant = `tenant-${randomUUID()}`;
      const admin = developmentIdentity('memory', tenant);
      const upsert = (inputs: Parameters<typeof normaliseEntities>[0]) => store.upsertEntities(tenant, normaliseEntities(inputs, admin), allowed);
      const relate = (inputs: Parameters<typeof normaliseRelations>[0]) => store.upsertRelations(tenant, normaliseRelations(inputs), allowed);
      const ref = (key: string, type = 'Service') => ({ type, key });
      const expand = (input: Parameters<typeof normaliseExpand>[0]) => store.expand(tenant, normaliseExpand(input, store.nowIso()), null);
      const path = (input: Parameters<typeof normalisePath>[0]) => store.shortestPath(tenant, normalisePath(input, store.nowIso()), null);
      /** A chain of Service entities and DEPENDS_ON relations: [a, b], [b, c], ... */
      const graph = async (edges: [string, string, number?][]) => {
        const keys = [...new Set(edges.flatMap(([a, b]) => [a, b] as string[]))];
        await upsert(keys.map((key) => ({ type: 'Service', key })));
        await relate(edges.map(([a, b, weight]) => ({ type: 'DEPENDS_ON', source: ref(a), target: ref(b), weight })));
      };
      return { clock, store, tenant, upsert, relate, ref, expand, path, graph };
    }

    it('upserts entities by (type, key) in batches: a repeat changes nothing, a change bumps the version', async () => {
      const { store, tenant, upsert, clock } = setup();
      const [api, db] = await upsert([
        { type: 'Service', key: 'api', name: 'API', properties: { team: 'core' } },
        { type: 'Service', key: 'db', memoryIds: [m1, m2] },
      ]);
      expect(api).toMatchObject({ type: 'Service', key: 'api', name: 'API', namespace: 'shared/graph', properties: { team: 'core' }, version: 1 });
      expect(db).toMatchObject({ name: 'db', version: 1 });
      clock.advance(1000);
      const [again] = await upsert([{ type: 'Service', key: 'api', name: 'API', properties: { team: 'core' } }]);
      expect(again).toMatchObject({ id: api!.id, version: 1, updatedAt: api!.updatedAt });
      const [changed] = await upsert([{ type: 'Service', key: 'api', name: 'API gateway', properties: { team: 'edge' } }]);
      expect(changed).toMatchObject({ id: api!.id, version: 2, name: 'API gateway', properties: { team: 'edge' } });
      // The same key under another type is another entity.
      const [person] = await upsert([{ type: 'Person', key: 'api' }]);
      expect(person!.id).not.toBe(api!.id);
      expect(await store.getByKey(tenant, 'Service', 'api')).toMatchObject({ id: api!.id, name: 'API gateway' });
      expect(await store.memoryIds(tenant, db!.id)).toEqual([m1, m2].sort());
      expect((await store.entitiesOfMemory(tenant, m2, null)).map((e) => e.key)).toEqual(['db']);
      expect(await store.get(`other-${tenant}`, api!.id)).toBeNull();
      const err = await rejection(
        Promise.resolve().then(() =>
          upsert([
            { type: 'Service', key: 'x' },
            { type: 'Service', key: 'x' },
          ]),
        ),
      );
      expect(err.extensions.code).toBe('BAD_USER_INPUT');
    });

    it('closes a changed relation and opens a new one, so reads as of any instant see the graph then', async () => {
      const { store, tenant, relate, ref, upsert, clock } = setup();
      const [api] = await upsert([
        { type: 'Service', key: 'api' },
        { type: 'Service', key: 'db' },
      ]);
      const t0 = store.nowIso();
      const [first] = await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), properties: { via: 'tcp' } }]);
      clock.advance(60_000);
      const t1 = store.nowIso();
      // The same fact again: nothing new.
      const [same] = await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), properties: { via: 'tcp' } }]);
      expect(same!.id).toBe(first!.id);
      clock.advance(60_000);
      const t2 = store.nowIso();
      const [second] = await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), properties: { via: 'tls' }, weight: 2 }]);
      expect(second!.id).not.toBe(first!.id);
      clock.advance(60_000);
      const t3 = store.nowIso();
      await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), properties: { via: 'tls' }, weight: 2, validTo: t3 }]);
      clock.advance(1);

      const at = (asOf: string) => store.relations(tenant, api!.id, { type: null, direction: 'OUT', asOf, history: false, limit: 100 });
      expect(await at(new Date(Date.parse(t0) - 1).toISOString())).toEqual([]);
      expect((await at(t1)).map((r) => r.properties)).toEqual([{ via: 'tcp' }]);
      expect((await at(t2)).map((r) => r.properties)).toEqual([{ via: 'tls' }]);
      expect(await at(t3)).toEqual([]);
      const history = await store.relations(tenant, api!.id, { type: null, direction: 'BOTH', asOf: t3, history: true, limit: 100 });
      expect(history.map((r) => [r.properties, r.validFrom, r.validTo, r.supersededAt])).toEqual([
        [{ via: 'tcp' }, t0, t2, t2],
        [{ via: 'tls' }, t2, t3, null],
      ]);
      // A change dated before the current row's start is refused.
      const err = await rejection(
        Promise.resolve().then(() => relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), properties: { via: 'udp' }, validFrom: t0 }])),
      );
      expect(err.extensions.code).toBe('BAD_USER_INPUT');
      const missing = await rejection(Promise.resolve().then(() => relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('nope') }])));
      expect(missing.extensions.code).toBe('NOT_FOUND');
    });

    it('keeps one current row per relation under concurrent upserts (a loser gets CONFLICT, a retry changes nothing)', async () => {
      const { store, tenant, relate, ref, upsert } = setup();
      const [api] = await upsert([
        { type: 'Service', key: 'api' },
        { type: 'Service', key: 'db' },
      ]);
      const input = [{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db') }];
      const results = await Promise.allSettled(Array.from({ length: 4 }, () => relate(input)));
      for (const r of results) if (r.status === 'rejected') expect((r.reason as { extensions: { code: string } }).extensions.code).toBe('CONFLICT');
      expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
      await relate(input);
      const rows = await store.relations(tenant, api!.id, { type: null, direction: 'OUT', asOf: store.nowIso(), history: true, limit: 100 });
      expect(rows).toHaveLength(1);
    });

    it('merges duplicates: relations move with their history, duplicate relations end, the old key answers the survivor', async () => {
      const { store, tenant, relate, ref, upsert, clock } = setup();
      const [pg, postgres, api, web] = await upsert([
        { type: 'Service', key: 'pg', properties: { port: 5432 }, memoryIds: [m1] },
        { type: 'Service', key: 'postgres', properties: { engine: 'postgresql', port: 1 }, memoryIds: [m2] },
        { type: 'Service', key: 'api' },
        { type: 'Service', key: 'web' },
      ]);
      const before = store.nowIso();
      await relate([
        { type: 'DEPENDS_ON', source: ref('api'), target: ref('pg') },
        { type: 'DEPENDS_ON', source: ref('api'), target: ref('postgres') },
        { type: 'DEPENDS_ON', source: ref('web'), target: ref('postgres'), properties: { v: 1 } },
        { type: 'REPLICA_OF', source: ref('postgres'), target: ref('pg') },
      ]);
      clock.advance(1000);
      await relate([{ type: 'DEPENDS_ON', source: ref('web'), target: ref('postgres'), properties: { v: 2 } }]);
      clock.advance(1000);
      const merged = await store.merge(tenant, pg!.id, [postgres!.id], allowed);
      expect(merged).toMatchObject({ id: pg!.id, properties: { port: 5432, engine: 'postgresql' }, version: 2 });
      expect(await store.getByKey(tenant, 'Service', 'postgres')).toMatchObject({ id: pg!.id });
      expect(await store.get(tenant, postgres!.id)).toMatchObject({ id: pg!.id });
      expect(await store.memoryIds(tenant, pg!.id)).toEqual([m1, m2].sort());

      const now = store.nowIso();
      const current = await store.relations(tenant, pg!.id, { type: null, direction: 'BOTH', asOf: now, history: false, limit: 100 });
      expect(current.map((r) => [r.sourceId, r.type, r.properties])).toEqual([
        [api!.id, 'DEPENDS_ON', {}],
        [web!.id, 'DEPENDS_ON', { v: 2 }],
      ]);
      // The history of web's relation came along: both rows now name the survivor.
      const history = await store.relations(tenant, web!.id, { type: null, direction: 'OUT', asOf: now, history: true, limit: 100 });
      expect(history.map((r) => [r.targetId, r.properties])).toEqual([
        [pg!.id, { v: 1 }],
        [pg!.id, { v: 2 }],
      ]);
      // Before the merge api had two relations (now both to pg); the self-loop of REPLICA_OF ended at the merge.
      const then = await store.relations(tenant, pg!.id, { type: null, direction: 'BOTH', asOf: before, history: false, limit: 100 });
      expect(then).toHaveLength(4);
      const justBefore = new Date(Date.parse(now) - 1).toISOString();
      const old = await store.relations(tenant, pg!.id, { type: null, direction: 'BOTH', asOf: justBefore, history: false, limit: 100 });
      expect(old.map((r) => r.type).sort()).toEqual(['DEPENDS_ON', 'DEPENDS_ON', 'DEPENDS_ON', 'REPLICA_OF']);
      // Upserting the merged key again links to the survivor.
      const [again] = await upsert([{ type: 'Service', key: 'postgres', memoryIds: [m3] }]);
      expect(again!.id).toBe(pg!.id);
      expect(await store.memoryIds(tenant, pg!.id)).toEqual([m1, m2, m3].sort());
    });

    it('deletes without cascade only when no relation is valid; cascade ends them, reads as of before still see it', async () => {
      const { store, tenant, relate, ref, upsert, clock, expand } = setup();
      const [api, db] = await upsert([
        { type: 'Service', key: 'api' },
        { type: 'Service', key: 'db' },
      ]);
      await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db') }]);
      clock.advance(1000);
      const before = store.nowIso();
      clock.advance(1000);
      const err = await rejection(store.delete(tenant, db!.id, false, allowed));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', relations: 1 });
      expect(await store.delete(tenant, db!.id, true, allowed)).toBe(true);
      expect(await store.delete(tenant, db!.id, true, allowed)).toBe(false);
      expect(await store.get(tenant, db!.id)).toBeNull();
      expect(await store.get(tenant, db!.id, null, before)).toMatchObject({ key: 'db' });
      expect(await store.getByKey(tenant, 'Service', 'db', null, before)).toMatchObject({ id: db!.id });
      expect(await store.get(tenant, db!.id, null, '2000-01-01T00:00:00.000Z')).toBeNull();
      expect((await expand({ from: [{ id: api!.id }] })).nodes.map((n) => n.entity.key)).toEqual(['api']);
      const past = await expand({ from: [{ id: api!.id }], asOf: before });
      expect(past.nodes.map((n) => n.entity.key)).toEqual(['api', 'db']);
      expect(past.edges).toHaveLength(1);
      // An entity without relations goes without cascade.
      const [lonely] = await upsert([{ type: 'Service', key: 'lonely' }]);
      expect(await store.delete(tenant, lonely!.id, false, allowed)).toBe(true);
    });

    it("keeps an entity's properties, name and namespace in time: reads as of an instant see the state then", async () => {
      const { store, tenant, upsert, relate, ref, clock, expand } = setup();
      const [api] = await upsert([{ type: 'Service', key: 'api', name: 'API', properties: { tier: 'gold' } }]);
      await upsert([{ type: 'Service', key: 'db' }]);
      await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db') }]);
      clock.advance(1000);
      const v1 = store.nowIso();
      clock.advance(1000);
      await upsert([{ type: 'Service', key: 'api', name: 'API gateway', properties: { tier: 'silver' } }]);
      clock.advance(1000);
      const v2 = store.nowIso();
      clock.advance(1000);
      await upsert([{ type: 'Service', key: 'api', name: 'API gateway', properties: { tier: 'bronze', owner: 'edge' } }]);
      expect(await store.get(tenant, api!.id)).toMatchObject({ version: 3, properties: { tier: 'bronze', owner: 'edge' } });
      expect(await store.get(tenant, api!.id, null, v1)).toMatchObject({ version: 1, name: 'API', properties: { tier: 'gold' } });
      expect(await store.getByKey(tenant, 'Service', 'api', null, v2)).toMatchObject({ version: 2, name: 'API gateway', properties: { tier: 'silver' } });
      // Expansions, neighbours and searches as of a time show the nodes as they were then.
      const db = await store.getByKey(tenant, 'Service', 'db');
      const past = await expand({ from: [{ id: db!.id }], asOf: v1 });
      expect(past.nodes.find((n) => n.entity.key === 'api')?.entity.properties).toEqual({ tier: 'gold' });
      const neighbours = await store.neighbours(tenant, db!.id, { type: null, direction: 'BOTH', asOf: v2, history: false, limit: 10 }, null);
      expect(neighbours.map((e) => e.properties)).toEqual([{ tier: 'silver' }]);
      const history = await store.history(tenant, api!.id, 20);
      expect(history.map((h) => [h.version, h.properties, h.validTo === null])).toEqual([
        [1, { tier: 'gold' }, false],
        [2, { tier: 'silver' }, false],
        [3, { tier: 'bronze', owner: 'edge' }, true],
      ]);
      expect(history[1]!.validFrom).toBe(history[0]!.validTo);
      expect((await store.history(tenant, api!.id, 2)).map((h) => h.version)).toEqual([2, 3]);
      // A delete is a state too: as of then the entity is gone; revived by an upsert, it is back.
      await relate([{ type: 'DEPENDS_ON', source: ref('api'), target: ref('db'), validTo: store.nowIso() }]);
      clock.advance(1000);
      expect(await store.delete(tenant, api!.id, false, allowed)).toBe(true);
      clock.advance(1000);
      const deleted = store.nowIso();
      clock.advance(1000);
      await upsert([{ type: 'Service', key: 'api', name: 'API', properties: { tier: 'gold' } }]);
      expect(await store.get(tenant, api!.id, null, deleted)).toBeNull();
      expect(await store.get(tenant, api!.id)).toMatchObject({ version: 4, properties: { tier: 'gold' } });
      expect((await store.history(tenant, api!.id, 20)).map((h) => [h.version, h.deleted])).toEqual([
        [1, false],
        [2, false],
        [3, false],
        [3, true],
        [4, false],
      ]);
      expect(await store.history(`other-${tenant}`, api!.id, 20)).toEqual([]);
    });

    it('expands k hops through cycles with type and direction filters, cut at the bounds', async () => {
      const { store, tenant, expand, graph, ref, upsert, relate } = setup();
      // a → b → c → a (a cycle), c → d → e, and x → a.
      await graph([
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
        ['c', 'd'],
        ['d', 'e'],
        ['x', 'a'],
      ]);
      const keys = (r: Awaited<ReturnType<typeof expand>>) => r.nodes.map((n) => `${n.entity.key}${n.depth}`).sort();
      const out4 = await expand({ from: [ref('a')], depth: 4, direction: 'OUT' });
      expect(keys(out4)).toEqual(['a0', 'b1', 'c2', 'd3', 'e4']);
      expect(out4.truncated).toBe(false);
      expect(out4.edges).toHaveLength(5);
      expect(keys(await expand({ from: [ref('a')], depth: 1, direction: 'BOTH' }))).toEqual(['a0', 'b1', 'c1', 'x1']);
      expect(keys(await expand({ from: [ref('a')], depth: 2, direction: 'IN' }))).toEqual(['a0', 'b2', 'c1', 'x1']);
      const cut = await expand({ from: [ref('a')], depth: 4, maxNodes: 3, maxEdges: 1 });
      expect(cut.nodes).toHaveLength(3);
      expect(cut.nodes[0]).toMatchObject({ depth: 0 });
      expect(cut.edges).toHaveLength(1);
      expect(cut.truncated).toBe(true);
      // Only through relations of a type, only to entities of a type.
      await upsert([{ type: 'Person', key: 'ann' }]);
      await relate([{ type: 'OWNS', source: ref('ann', 'Person'), target: ref('a') }]);
      expect(keys(await expand({ from: [ref('a')], depth: 1, relationTypes: ['OWNS'] }))).toEqual(['a0', 'ann1']);
      expect(keys(await expand({ from: [ref('a')], depth: 1, entityTypes: ['Person'] }))).toEqual(['a0', 'ann1']);
      const limit = await rejection(Promise.resolve().then(() => expand({ from: [ref('a')], depth: 5 })));
      expect(limit.extensions).toMatchObject({ code: 'GRAPH_LIMIT_EXCEEDED', field: 'input.depth', max: 4 });
      const nodes = await rejection(Promise.resolve().then(() => expand({ from: [ref('a')], maxNodes: 1001 })));
      expect(nodes.extensions.code).toBe('GRAPH_LIMIT_EXCEEDED');
      expect(await store.get(tenant, 'missing')).toBeNull();
    });

    it('finds shortest paths, unweighted and weighted, within the depth bound and as of a time', async () => {
      const { path, graph, ref, relate, clock, store } = setup();
      // Short but expensive: a → b → z (cost 20); long but cheap: a → c → d → e → z (cost 4).
      await graph([
        ['a', 'b', 10],
        ['b', 'z', 10],
        ['a', 'c', 1],
        ['c', 'd', 1],
        ['d', 'e', 1],
        ['e', 'z', 1],
        ['z', 'a', 1],
      ]);
      const hops = await path({ from: ref('a'), to: ref('z') });
      expect(hops).toMatchObject({ length: 2, cost: 2 });
      expect(hops!.nodes.map((n) => n.key)).toEqual(['a', 'b', 'z']);
      expect(hops!.edges.map((e) => e.weight)).toEqual([10, 10]);
      const cheap = await path({ from: ref('a'), to: ref('z'), weighted: true });
      expect(cheap).toMatchObject({ length: 4, cost: 4 });
      expect(cheap!.nodes.map((n) => n.key)).toEqual(['a', 'c', 'd', 'e', 'z']);
      // Three hops are not enough for the cheap one: the expensive one is the best within them.
      const bounded = await path({ from: ref('a'), to: ref('z'), weighted: true, maxDepth: 3 });
      expect(bounded!.nodes.map((n) => n.key)).toEqual(['a', 'b', 'z']);
      expect(await path({ from: ref('a'), to: ref('e'), maxDepth: 2 })).toBeNull();
      // Against the direction: only IN or BOTH find z → ... → a reversed.
      expect((await path({ from: ref('z'), to: ref('c'), direction: 'IN' }))?.nodes.map((n) => n.key)).toEqual(['z', 'e', 'd', 'c']);
      expect((await path({ from: ref('b'), to: ref('c'), direction: 'BOTH' }))?.length).toBe(2);
      // Ending b → z: the unweighted path now takes the long way; as of before, the short one.
      const before = store.nowIso();
      clock.advance(1000);
      await relate([{ type: 'DEPENDS_ON', source: ref('b'), target: ref('z'), weight: 10, validTo: store.nowIso() }]);
      clock.advance(1000);
      expect((await path({ from: ref('a'), to: ref('z') }))?.length).toBe(4);
      expect((await path({ from: ref('a'), to: ref('z'), asOf: before }))?.length).toBe(2);
      expect(await path({ from: ref('a'), to: ref('a') })).toMatchObject({ length: 0, cost: 0 });
      const err = await rejection(Promise.resolve().then(() => path({ from: ref('a'), to: ref('z'), maxDepth: 7 })));
      expect(err.extensions.code).toBe('GRAPH_LIMIT_EXCEEDED');
    });

    it('walks an agent caller only through entities it may read', async () => {
      const { store, tenant, upsert, relate, ref } = setup();
      // mine (agents/a) → theirs (agents/b) → shared (shared/graph), and mine → shared directly at weight 10.
      await upsert([
        { type: 'Service', key: 'mine', namespace: 'agents/a/graph' },
        { type: 'Service', key: 'theirs', namespace: 'agents/b/graph' },
        { type: 'Service', key: 'shared' },
      ]);
      await relate([
        { type: 'DEPENDS_ON', source: ref('mine'), target: ref('theirs') },
        { type: 'DEPENDS_ON', source: ref('theirs'), target: ref('shared') },
        { type: 'DEPENDS_ON', source: ref('mine'), target: ref('shared'), weight: 10 },
      ]);
      const agentA = ['agents/a', 'shared'];
      const expanded = await store.expand(tenant, normaliseExpand({ from: [ref('mine')], depth: 2, direction: 'OUT' }, store.nowIso()), agentA);
      expect(expanded.nodes.map((n) => `${n.entity.key}${n.depth}`)).toEqual(['mine0', 'shared1']);
      const admin = await store.expand(tenant, normaliseExpand({ from: [ref('mine')], depth: 2, direction: 'OUT' }, store.nowIso()), null);
      expect(admin.nodes.map((n) => n.entity.key).sort()).toEqual(['mine', 'shared', 'theirs']);
      const cheap = normalisePath({ from: ref('mine'), to: ref('shared'), weighted: true }, store.nowIso());
      expect((await store.shortestPath(tenant, cheap, null))?.nodes.map((n) => n.key)).toEqual(['mine', 'theirs', 'shared']);
      expect((await store.shortestPath(tenant, cheap, agentA))?.nodes.map((n) => n.key)).toEqual(['mine', 'shared']);
    });

    it('searches entities by words in name and properties, by vector, and as of a time', async () => {
      const { store, tenant, upsert, clock } = setup();
      const t0 = store.nowIso();
      clock.advance(1000);
      await upsert([
        { type: 'Service', key: 'billing', name: 'Billing service', properties: { language: 'kotlin' }, vector: [1, 0, 0] },
        { type: 'Service', key: 'search', name: 'Search engine', properties: { language: 'rust' }, vector: [0, 1, 0] },
        { type: 'Person', key: 'ann', name: 'Ann Kotlin', vector: [0.9, 0.1, 0] },
      ]);
      const find = (input: Parameters<typeof normaliseEntitySearch>[0]) => store.search(tenant, normaliseEntitySearch(input, store.nowIso()), null);
      expect((await find({ text: 'kotlin' })).map((h) => h.entity.key).sort()).toEqual(['ann', 'billing']);
      expect((await find({ text: 'kotlin', types: ['Service'] })).map((h) => h.entity.key)).toEqual(['billing']);
      expect((await find({ text: 'engines' })).map((h) => h.entity.key)).toEqual(['search']);
      const near = await find({ vector: [1, 0, 0], k: 2 });
      expect(near.map((h) => h.entity.key)).toEqual(['billing', 'ann']);
      expect(near[0]!.score).toBeCloseTo(1);
      expect((await find({ text: 'kotlin', vector: [0, 1, 0] })).map((h) => h.entity.key)).toContain('search');
      expect(await find({ text: 'kotlin', asOf: t0 })).toEqual([]);
      const dim = await rejection(Promise.resolve().then(() => upsert([{ type: 'Service', key: 'odd', vector: [1, 2] }])));
      expect(dim.extensions.code).toBe('DIMENSION_MISMATCH');
    });

    it('publishes entity and relation changes with the entity types concerned', async () => {
      const { upsert, relate, ref, tenant } = setup();
      const seen: DomainEvent[] = [];
      const off = await Promise.all(
        ['GraphEntityChanged', 'GraphRelationChanged'].map((c) => t.bus.subscribe(c, (e) => e.tenantId === tenant && seen.push(e))),
      );
      try {
        await upsert([
          { type: 'Service', key: 'api' },
          { type: 'Person', key: 'ann' },
        ]);
        await relate([{ type: 'OWNS', source: ref('ann', 'Person'), target: ref('api') }]);
        await vi.waitFor(() => expect(seen).toHaveLength(3));
        const payloads = seen.map((e) => e.payload as GraphEventPayload);
        expect(payloads.map((p) => [p.change, p.entityTypes])).toEqual([
          ['ENTITY_UPSERTED', ['Service']],
          ['ENTITY_UPSERTED', ['Person']],
          ['RELATION_OPENED', ['Person', 'Service']],
        ]);
      } finally {
        for (const o of off) await o();
      }
    });
  });
});

describe('knowledge graph rules', () => {
  const agent: RequestIdentity = { ...developmentIdentity('memory'), kind: 'apiKey', agentId: 'a1', scopes: ['memory:read', 'memory:write'] };
  const codeOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as { extensions?: { code?: string } }).extensions?.code;
    }
    return 'none';
  };

  it("puts an agent's entities under its own namespace and refuses others' and shared without memory:shared", () => {
    expect(normaliseEntities([{ type: 'Service', key: 'x' }], agent)[0]?.namespace).toBe('agents/a1/graph');
    expect(codeOf(() => normaliseEntities([{ type: 'Service', key: 'x', namespace: 'agents/a2/graph' }], agent))).toBe('AGENT_MISMATCH');
    expect(codeOf(() => normaliseEntities([{ type: 'Service', key: 'x', namespace: 'shared/graph' }], agent))).toBe('FORBIDDEN');
    expect(
      codeOf(() => normaliseEntities([{ type: 'Service', key: 'x', namespace: 'shared/graph' }], { ...agent, scopes: [...agent.scopes, 'memory:shared'] })),
    ).toBe('none');
  });

  it('checks types, references, batches and bounds', () => {
    expect(codeOf(() => normaliseEntities([{ type: '1bad', key: 'x' }], agent))).toBe('BAD_USER_INPUT');
    expect(
      codeOf(() =>
        normaliseEntities(
          Array.from({ length: 501 }, (_, i) => ({ type: 'S', key: `${i}` })),
          agent,
        ),
      ),
    ).toBe('GRAPH_LIMIT_EXCEEDED');
    expect(codeOf(() => normaliseRelations([{ type: 'R', source: { id: randomUUID(), type: 'S', key: 'k' }, target: { type: 'S', key: 'k' } }]))).toBe(
      'BAD_USER_INPUT',
    );
    expect(codeOf(() => normaliseRelations([{ type: 'R', source: { type: 'S', key: 'a' }, target: { type: 'S', key: 'b' }, weight: -1 }]))).toBe(
      'BAD_USER_INPUT',
    );
    const now = new Date().toISOString();
    expect(codeOf(() => normaliseExpand({ from: [{ type: 'S', key: 'a' }], maxEdges: 5001 }, now))).toBe('GRAPH_LIMIT_EXCEEDED');
    expect(codeOf(() => normaliseExpand({ from: Array.from({ length: 101 }, (_, i) => ({ type: 'S', key: `${i}` })) }, now))).toBe('GRAPH_LIMIT_EXCEEDED');
    expect(codeOf(() => normaliseExpand({ from: [{ type: 'S', key: 'a' }], asOf: 'yesterday' }, now))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => normaliseEntitySearch({}, now))).toBe('BAD_USER_INPUT');
  });
});
