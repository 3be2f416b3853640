import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { developmentIdentity, type RequestIdentity } from '../../runtime/identity.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { compare, normaliseFilter, normaliseRemember, normaliseSearch, readablePrefixes } from '../../subgraphs/memory/domain.ts';
import { migrations } from '../../subgraphs/memory/migrations.ts';
import { MemoryStore, type MemoryDB, type Scope } from '../../subgraphs/memory/store.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';

/** A deterministic pseudo-random vector. */
function vectorOf(seed: number, dim = 8): number[] {
  let x = seed * 9301 + 49297;
  return Array.from({ length: dim }, () => {
    x = (x * 9301 + 49297) % 233280;
    return x / 233280 - 0.5;
  });
}

/** A search by an admin: the whole tenant, narrowed by the request's own filter. */
function find(store: MemoryStore, tenant: string, input: Parameters<typeof normaliseSearch>[0]) {
  const req = normaliseSearch(input);
  return store.search(tenant, { prefixes: null, filter: req.filter }, req);
}

const all = (): Scope => ({ prefixes: null, filter: normaliseFilter(undefined) });

describe.each(backends)('memory store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<MemoryDB>;
    beforeAll(async () => {
      t = await openTestDatabase<MemoryDB>(backend, 'memory', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup() {
      const clock = manualClock();
      const store = new MemoryStore(t.database, t.bus, t.logger, clock.now);
      const tenant = `tenant-${randomUUID()}`;
      const admin: RequestIdentity = developmentIdentity('memory', tenant);
      const remember = async (input: Parameters<typeof normaliseRemember>[0], who: RequestIdentity = admin) => {
        const [row] = await store.remember(tenant, [normaliseRemember(input, who, clock.now())]);
        return row!;
      };
      return { clock, store, tenant, admin, remember };
    }

    it('remembers, reads back, and lists by namespace prefix segment-wise, newest first', async () => {
      const { store, tenant, clock, remember } = setup();
      const a = await remember({ namespace: 'agents/a/notes', text: 'first note', metadata: { topic: 'x' }, importance: 0.9 });
      clock.advance(1000);
      const b = await remember({ namespace: 'agents/a', text: 'second note' });
      clock.advance(1000);
      await remember({ namespace: 'agents/ab', text: 'not under agents/a' });
      expect(await store.get(tenant, a.id)).toMatchObject({
        namespace: 'agents/a/notes',
        kind: 'SEMANTIC',
        metadata: { topic: 'x' },
        importance: 0.9,
        version: 1,
      });
      const page = await store.list(tenant, { prefixes: ['agents/a'], filter: normaliseFilter(undefined) }, pageRequest({ first: 1 }));
      expect(page.totalCount).toBe(2);
      expect(page.nodes.map((n) => n.id)).toEqual([b.id]);
      const next = await store.list(
        tenant,
        { prefixes: ['agents/a'], filter: normaliseFilter(undefined) },
        pageRequest({ first: 5, after: page.pageInfo.endCursor }),
      );
      expect(next.nodes.map((n) => n.id)).toEqual([a.id]);
      // Another tenant sees nothing.
      expect(await store.get(`other-${tenant}`, a.id)).toBeNull();
    });

    it('keeps every version on update and refuses a stale expectedVersion', async () => {
      const { store, tenant, clock, remember } = setup();
      const m = await remember({ namespace: 'shared/facts', text: 'the sky is green' });
      clock.advance(1000);
      const updated = await store.update(tenant, m.id, { text: 'the sky is blue', importance: 0.8 }, 1, () => undefined);
      expect(updated).toMatchObject({ text: 'the sky is blue', importance: 0.8, version: 2 });
      const history = await store.history(tenant, m.id);
      expect(history.map((v) => [v.version, v.text])).toEqual([
        [2, 'the sky is blue'],
        [1, 'the sky is green'],
      ]);
      const stale = await rejection(store.update(tenant, m.id, { text: 'x' }, 1, () => undefined));
      expect(stale.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
      // The lexical index follows the new text.
      const hits = await find(store, tenant, { text: 'blue' });
      expect(hits.map((h) => h.memory.id)).toEqual([m.id]);
      expect(await find(store, tenant, { text: 'green' })).toEqual([]);
    });

    it('forgets one memory, and by filter only what matches', async () => {
      const { store, tenant, remember } = setup();
      const a = await remember({ namespace: 'tasks/t1', text: 'alpha', kind: 'EPISODIC' });
      const b = await remember({ namespace: 'tasks/t1/sub', text: 'beta', kind: 'PROCEDURAL' });
      const c = await remember({ namespace: 'tasks/t2', text: 'gamma', kind: 'EPISODIC' });
      expect(await store.forget(tenant, a.id, () => undefined)).toBe(true);
      expect(await store.forget(tenant, a.id, () => undefined)).toBe(false);
      const n = await store.forgetMatching(tenant, { prefixes: ['tasks/t1'], filter: normaliseFilter({ kinds: ['PROCEDURAL'] }) });
      expect(n).toBe(1);
      expect(await store.get(tenant, b.id)).toBeNull();
      expect(await store.get(tenant, c.id)).not.toBeNull();
      expect(await find(store, tenant, { text: 'alpha beta gamma' })).toHaveLength(1);
    });

    it('hides expired memories at once and the sweeper deletes them', async () => {
      const { store, tenant, clock, remember } = setup();
      const m = await remember({ namespace: 'agents/x', text: 'short lived', ttlSeconds: 60 });
      const keep = await remember({ namespace: 'agents/x', text: 'long lived' });
      clock.advance(61_000);
      expect(await store.get(tenant, m.id)).toBeNull();
      expect((await store.list(tenant, all(), pageRequest({}))).nodes.map((r) => r.id)).toEqual([keep.id]);
      expect(await store.sweepExpired()).toBeGreaterThanOrEqual(1);
      expect(await store.forget(tenant, m.id, () => undefined)).toBe(false);
    });

    it('ranks lexical matches by relevance, stemming, and ignores query syntax', async () => {
      const { store, tenant, remember } = setup();
      const both = await remember({ namespace: 'n', text: 'Deploying the payment service requires a database migration' });
      const one = await remember({ namespace: 'n', text: 'The payment was refunded' });
      await remember({ namespace: 'n', text: 'Unrelated gardening tips' });
      const hits = await find(store, tenant, { text: 'payment migrations' });
      expect(hits.map((h) => h.memory.id)).toEqual([both.id, one.id]);
      expect(hits[0]).toMatchObject({ mode: 'LEXICAL', lexicalRank: 1 });
      expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
      // FTS operators in the user's text are words, not syntax.
      expect(await find(store, tenant, { text: 'payment" OR NEAR(* -' })).toHaveLength(2);
    });

    it('finds exact nearest neighbours under each metric, with filters inside the search', async () => {
      const { store, tenant, remember } = setup();
      const rows = [];
      for (let i = 0; i < 40; i++) {
        rows.push(
          await remember({ namespace: i % 2 ? 'odd' : 'even', text: `item ${i}`, vector: vectorOf(i), metadata: { n: i, parity: i % 2 ? 'odd' : 'even' } }),
        );
      }
      const query = vectorOf(1000);
      for (const metric of ['COSINE', 'DOT', 'EUCLIDEAN'] as const) {
        const expected = rows
          .map((r) => ({ id: r.id, d: compare(metric, query, r.vector!).distance }))
          .sort((a, b) => a.d - b.d)
          .slice(0, 5)
          .map((r) => r.id);
        const hits = await find(store, tenant, { vector: query, metric, k: 5 });
        expect(hits.map((h) => h.memory.id)).toEqual(expected);
        expect(hits.map((h) => h.vectorRank)).toEqual([1, 2, 3, 4, 5]);
      }
      const filtered = await find(store, tenant, {
        vector: query,
        k: 100,
        filter: {
          metadata: [
            { key: 'n', gte: 10, lt: 20 },
            { key: 'parity', in: ['odd'] },
          ],
        },
      });
      expect(filtered.map((h) => (h.memory.metadata as { n: number }).n).sort((a, b) => a - b)).toEqual([11, 13, 15, 17, 19]);
      // A range of strings never matches a number field.
      expect(await find(store, tenant, { vector: query, filter: { metadata: [{ key: 'n', gt: 'a' }] } })).toEqual([]);
      const wrong = await rejection(find(store, tenant, { vector: [1, 2, 3] }));
      expect(wrong.extensions).toMatchObject({ code: 'DIMENSION_MISMATCH', expected: 8, actual: 3 });
      const wrongWrite = await rejection(
        store.remember(tenant, [normaliseRemember({ namespace: 'x', text: 'y', vector: [1] }, developmentIdentity('memory', tenant), 0)]),
      );
      expect(wrongWrite.extensions).toMatchObject({ code: 'DIMENSION_MISMATCH' });
    });

    it("compares against a memory's new vector once it was updated, also from another store (replica)", async () => {
      const { store, tenant, clock, remember } = setup();
      const m = await remember({ namespace: 'u', text: 'moving', vector: [1, 0] });
      await remember({ namespace: 'u', text: 'fixed', vector: [0.8, 0.2] });
      expect((await find(store, tenant, { vector: [1, 0], k: 1 }))[0]!.memory.id).toBe(m.id);
      // Another replica's store has its own cache: it reads the update from the table.
      const replica = new MemoryStore(t.database, t.bus, t.logger, clock.now);
      expect((await find(replica, tenant, { vector: [1, 0], k: 1 }))[0]!.memory.id).toBe(m.id);
      await replica.update(tenant, m.id, { vector: [0, 1] }, null, () => undefined);
      const [nearest] = await find(store, tenant, { vector: [1, 0], k: 2 });
      expect(nearest!.memory.text).toBe('fixed');
    });

    it('fuses lexical and vector lists with RRF and explains each score; weights recency', async () => {
      const { store, tenant, clock, remember } = setup();
      const old = await remember({ namespace: 'h', text: 'rotate the api keys monthly', vector: [1, 0, 0] });
      clock.advance(86_400_000);
      const near = await remember({ namespace: 'h', text: 'weather report', vector: [0.9, 0.1, 0] });
      const words = await remember({ namespace: 'h', text: 'api keys live in the vault', vector: [0, 0, 1] });
      const hits = await find(store, tenant, { text: 'api keys', vector: [1, 0, 0] });
      expect(hits[0]!.memory.id).toBe(old.id);
      expect(hits[0]).toMatchObject({ mode: 'HYBRID', vectorRank: 1 });
      expect(hits[0]!.fusedScore).toBeCloseTo(1 / 61 + 1 / (60 + hits[0]!.lexicalRank!), 10);
      expect(hits[0]!.explanation).toContain('rrf(k=60)');
      expect(hits.map((h) => h.memory.id)).toEqual(expect.arrayContaining([near.id, words.id]));
      // With recency weighted fully, the day-old memory drops behind the fresh ones.
      const recent = await find(store, tenant, { text: 'api keys', vector: [1, 0, 0], recencyWeight: 1 });
      expect(recent.at(-1)!.memory.id).toBe(old.id);
      expect(recent[0]!.recency).toBe(1);
      const min = await find(store, tenant, { vector: [1, 0, 0], mode: 'VECTOR', minScore: 0.9 });
      expect(min.map((h) => h.memory.id)).toEqual([old.id, near.id]);
    });

    it('answers a keyed batch once, and a batch with one bad vector stores nothing', async () => {
      const { store, tenant, admin, clock } = setup();
      const request = { tenantId: tenant, principal: 'p', key: 'k1', fingerprint: 'f' };
      const drafts = [0, 1].map((i) => normaliseRemember({ namespace: 'b', text: `batch ${i}`, vector: [i, 1] }, admin, clock.now()));
      const first = await store.remember(tenant, drafts, request);
      const again = await store.remember(tenant, drafts, request);
      expect(again.map((r) => r.id)).toEqual(first.map((r) => r.id));
      const bad = [
        normaliseRemember({ namespace: 'b', text: 'ok', vector: [1, 1] }, admin, 0),
        normaliseRemember({ namespace: 'b', text: 'bad', vector: [1] }, admin, 0),
      ];
      await rejection(store.remember(tenant, bad));
      expect((await store.list(tenant, all(), pageRequest({}))).totalCount).toBe(2);
    });
  });
});

describe('memory namespaces', () => {
  const agent: RequestIdentity = { ...developmentIdentity('memory'), kind: 'apiKey', agentId: 'a1', scopes: ['memory:read', 'memory:write'] };
  it('lets an agent write only under agents/<its id>, and shared only with memory:shared', () => {
    expect(() => normaliseRemember({ namespace: 'agents/a1/notes', text: 'x' }, agent, 0)).not.toThrow();
    const other = (() => {
      try {
        normaliseRemember({ namespace: 'agents/a2', text: 'x' }, agent, 0);
      } catch (err) {
        return err as GraphQLError;
      }
    })();
    expect(other?.extensions.code).toBe('AGENT_MISMATCH');
    expect(() => normaliseRemember({ namespace: 'shared/x', text: 'x' }, agent, 0)).toThrow(/memory:shared/);
    expect(() => normaliseRemember({ namespace: 'shared/x', text: 'x' }, { ...agent, scopes: [...agent.scopes, 'memory:shared'] }, 0)).not.toThrow();
  });
  it('narrows an agent reading without a prefix to its own and the shared namespaces', () => {
    expect(readablePrefixes(agent, undefined)).toEqual(['agents/a1', 'shared']);
    expect(readablePrefixes(agent, 'agents')).toEqual(['agents/a1']);
    expect(() => readablePrefixes(agent, 'agents/a2')).toThrow(/may read only/);
    expect(readablePrefixes(developmentIdentity('memory'), undefined)).toBeNull();
  });
  it('refuses bad input with the field named', () => {
    const admin = developmentIdentity('memory');
    expect(() => normaliseRemember({ namespace: 'a//b', text: 'x' }, admin, 0)).toThrow(/path segments/);
    expect(() => normaliseRemember({ namespace: 'a', text: 'x'.repeat(40_000) }, admin, 0)).toThrow(/at most 32768/);
    expect(() => normaliseRemember({ namespace: 'a', text: 'x', vector: [Number.NaN] }, admin, 0)).toThrow(/finite/);
    expect(() => normaliseSearch({ text: 'x', k: 101 })).toThrow(/k must be an integer from 1 to 100/);
    expect(() => normaliseSearch({ mode: 'VECTOR', text: 'x' })).toThrow(/needs input.vector/);
    expect(() => normaliseFilter({ metadata: [{ key: 'n', gt: 1, lt: 'z' }] })).toThrow(/all be numbers or all be strings/);
  });
});
