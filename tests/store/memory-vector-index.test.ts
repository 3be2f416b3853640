// The HNSW vector index (subgraphs/memory/store/vector-index.ts) against the exact scan, on both
// backends: the same neighbours (at this size the graph is exact), filters inside the search,
// and replicas that each keep their own index fed by the outbox's events.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../runtime/db.ts';
import { developmentIdentity } from '../../runtime/identity.ts';
import { Outbox } from '../../runtime/outbox.ts';
import { normaliseRemember, normaliseSearch } from '../../subgraphs/memory/domain.ts';
import { migrations } from '../../subgraphs/memory/migrations.ts';
import { MemoryStore, type MemoryDB } from '../../subgraphs/memory/store.ts';
import { tenantIds } from '../../subgraphs/memory/store/filters.ts';
import { VectorIndex } from '../../subgraphs/memory/store/vector-index.ts';
import { decodeVector } from '../../subgraphs/memory/store/vectors.ts';
import { backends, openTestDatabase, silentLogger, type TestDatabase } from '../support/databases.ts';
import { manualClock } from '../support/store-helpers.ts';

/** A deterministic pseudo-random vector in [-0.5, 0.5)^dim. */
function vectorOf(seed: number, dim = 16): number[] {
  let x = (seed * 7919 + 104729) % 233280;
  return Array.from({ length: dim }, () => {
    x = (x * 9301 + 49297) % 233280;
    return x / 233280 - 0.5;
  });
}

describe.each(backends)('memory vector index on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<MemoryDB>;
    const indexes: VectorIndex[] = [];
    const outboxes: Outbox[] = [];
    beforeAll(async () => {
      t = await openTestDatabase<MemoryDB>(backend, 'memoryindex', migrations);
    });
    afterAll(async () => {
      for (const i of indexes) i.close();
      for (const o of outboxes) await o.stop();
      await t?.drop();
    });

    const clock = manualClock();
    /** One replica: its own outbox writer and its own in-process index over the shared database. */
    function replica() {
      const outbox = new Outbox({
        database: t.database as Database<unknown>,
        bus: t.bus,
        logger: silentLogger,
        channel: 'memory',
        retentionSeconds: 3600,
        relayIntervalMs: 60_000,
      });
      outboxes.push(outbox);
      const index = new VectorIndex(t.database.db, outbox, silentLogger, { connectivity: 16, expansionAdd: 128, expansionSearch: 64, sliceSize: 32 });
      indexes.push(index);
      return { store: new MemoryStore(t.database, outbox, silentLogger, clock.now, undefined, index), index };
    }
    const exact = () => new MemoryStore(t.database, t.bus, silentLogger, clock.now);
    const search = (store: MemoryStore, tenant: string, input: Parameters<typeof normaliseSearch>[0], prefixes: string[] | null = null) => {
      const req = normaliseSearch(input);
      return store.search(tenant, { prefixes, filter: req.filter }, req);
    };
    const ids = (hits: { memory: { id: string } }[]) => hits.map((h) => h.memory.id);

    it('finds the same neighbours as the exact scan under each metric, with filters and a narrow namespace', async () => {
      const tenant = `tenant-${randomUUID()}`;
      const who = developmentIdentity('memory', tenant);
      const { store, index } = replica();
      await index.prepare(tenant);
      const drafts = Array.from({ length: 400 }, (_, i) =>
        normaliseRemember(
          {
            namespace: i % 100 === 7 ? 'rare/few' : `bulk/${i % 3}`,
            text: `item ${i}`,
            vector: vectorOf(i),
            metadata: { n: i, parity: i % 2 ? 'odd' : 'even' },
          },
          who,
          clock.now(),
        ),
      );
      for (let i = 0; i < drafts.length; i += 100) await store.remember(tenant, drafts.slice(i, i + 100));
      // Some still pending, some in the graph: the answer is the same.
      const early = await search(store, tenant, { vector: vectorOf(5000), k: 10 });
      await index.settled(tenant);
      expect(index.status(tenant)).toEqual({ vectors: 400, indexed: 400, pending: 0, loaded: true });
      expect(ids(await search(store, tenant, { vector: vectorOf(5000), k: 10 }))).toEqual(ids(early));
      const reference = exact();
      for (const metric of ['COSINE', 'DOT', 'EUCLIDEAN'] as const) {
        for (const seed of [5000, 5001, 5002]) {
          const q = { vector: vectorOf(seed), metric, k: 10 };
          const got = await search(store, tenant, q);
          expect(got).toHaveLength(10);
          expect(ids(got)).toEqual(ids(await search(reference, tenant, q)));
          expect(got.map((h) => h.vectorRank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        }
      }
      const filtered = {
        vector: vectorOf(5003),
        k: 5,
        filter: {
          metadata: [
            { key: 'parity', eq: 'odd' },
            { key: 'n', gte: 200 },
          ],
        },
      };
      const odd = await search(store, tenant, filtered);
      expect(odd.map((h) => (h.memory.metadata as { n: number }).n).every((n) => n % 2 === 1 && n >= 200)).toBe(true);
      expect(ids(odd)).toEqual(ids(await search(reference, tenant, filtered)));
      // 4 of 400 under rare/: the graph's first candidates miss them, the search still finds all.
      const rare = await search(store, tenant, { vector: vectorOf(5004), k: 10 }, ['rare']);
      expect(rare.map((h) => h.memory.namespace)).toEqual(['rare/few', 'rare/few', 'rare/few', 'rare/few']);
      expect(ids(rare)).toEqual(ids(await search(reference, tenant, { vector: vectorOf(5004), k: 10 }, ['rare'])));
    });

    it('keeps two replicas in step through the events: a write, an update and a forget on one are seen by the other', async () => {
      const tenant = `tenant-${randomUUID()}`;
      const who = developmentIdentity('memory', tenant);
      const a = replica();
      const b = replica();
      await a.index.prepare(tenant);
      await b.index.prepare(tenant);
      const [far] = await a.store.remember(tenant, [normaliseRemember({ namespace: 'r', text: 'far', vector: [0.5, 1, 0] }, who, clock.now())]);
      const [moving] = await a.store.remember(tenant, [normaliseRemember({ namespace: 'r', text: 'moving', vector: [0, 0, 1] }, who, clock.now())]);
      expect(ids(await search(b.store, tenant, { vector: [1, 0, 0], k: 1 }))).toEqual([far!.id]);
      await a.store.update(tenant, moving!.id, { vector: [1, 0.01, 0] }, null, () => undefined);
      expect(ids(await search(b.store, tenant, { vector: [1, 0, 0], k: 1 }))).toEqual([moving!.id]);
      await a.store.forget(tenant, moving!.id, () => undefined);
      expect(ids(await search(b.store, tenant, { vector: [1, 0, 0], k: 5 }))).toEqual([far!.id]);
      expect(b.index.status(tenant).vectors).toBe(1);
      // A replica started later loads what is there.
      const c = replica();
      await c.index.settled(tenant);
      expect(c.index.status(tenant)).toMatchObject({ vectors: 1, indexed: 1, loaded: true });
      expect(ids(await search(c.store, tenant, { vector: [0, 1, 0], k: 5 }))).toEqual([far!.id]);
    });

    it('answers from the exact scan while a tenant is not loaded yet, then from the index', async () => {
      const tenant = `tenant-${randomUUID()}`;
      const who = developmentIdentity('memory', tenant);
      const writer = replica();
      await writer.store.remember(
        tenant,
        [0, 1, 2].map((i) => normaliseRemember({ namespace: 'w', text: `w${i}`, vector: vectorOf(i, 4) }, who, clock.now())),
      );
      const cold = replica();
      const first = await search(cold.store, tenant, { vector: vectorOf(1, 4), k: 1 });
      expect(first[0]!.memory.text).toBe('w1');
      await cold.index.settled(tenant);
      expect(cold.index.status(tenant)).toMatchObject({ vectors: 3, indexed: 3 });
      expect(ids(await search(cold.store, tenant, { vector: vectorOf(1, 4), k: 1 }))).toEqual(ids(first));
    });
  });
});

describe('memory migration 0005 (SQLite)', () => {
  it('looks memories up by id through the primary key, not a tenant index (SQLite has no statistics)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'memory-plan-'));
    try {
      const database = await openDatabase<MemoryDB>({ name: 'memory', dataDir, migrations, logger: silentLogger });
      const query = database.db
        .selectFrom('memories')
        .select('id')
        .where(tenantIds('sqlite', 't', ['a', 'b']))
        .compile();
      const plan = await sql.raw<{ detail: string }>(`explain query plan ${query.sql.replace(/\?/g, "'x'")}`).execute(database.db);
      expect(plan.rows.map((r) => r.detail).join(' ')).toMatch(/sqlite_autoindex_memories_1 \(id=\?\)/);
      await database.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('converts the JSON vectors of existing memories to float64 bytes, exactly', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'memory-0005-'));
    try {
      const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0005'));
      const old = await openDatabase<unknown>({ name: 'memory', dataDir, migrations: before, logger: silentLogger });
      const vector = [0.1, -2.5e-7, 3, 1 / 3];
      const row = (id: string, v: number[] | null) => ({
        id,
        tenant_id: 't',
        namespace: 'n',
        kind: 'SEMANTIC',
        text: id,
        metadata: '{}',
        importance: 0.5,
        vector: v === null ? null : JSON.stringify(v),
        dimension: v?.length ?? null,
        created_at: '2026-01-01T00:00:00.000Z',
        updated_at: '2026-01-01T00:00:00.000Z',
        version: 1,
      });
      await (old.db as never as Kysely<{ memories: ReturnType<typeof row> }>)
        .insertInto('memories')
        .values([row('a', vector), row('b', null)])
        .execute();
      await old.close();
      const upgraded = await openDatabase<MemoryDB>({ name: 'memory', dataDir, migrations, logger: silentLogger });
      const rows = await upgraded.db.selectFrom('memories').select(['id', 'embedding']).orderBy('id').execute();
      expect(rows.map((r) => (r.embedding === null ? null : Array.from(decodeVector(r.embedding))))).toEqual([vector, null]);
      await upgraded.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
