// The transactional outbox on every backend (SQLite always, PostgreSQL when DATABASE_URL is
// set): events are stored by the transaction of the change and only by it, sequences per tenant
// are gap-free and follow commit order under concurrency (two pools on PostgreSQL, like two
// replicas), the relay publishes what nobody published (each row once across replicas), marks
// are batched, and published events are pruned after the retention.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql, type Migration } from 'kysely';
import { openDatabase, type Database } from '../../runtime/db.ts';
import type { EventBus } from '../../runtime/events.ts';
import { Outbox, outboxMigration, outboxTraceMigration, type OutboxOptions, type OutboxTables } from '../../runtime/outbox.ts';
import { inTransaction } from '../../runtime/unit-of-work.ts';
import { backends, DATABASE_URL, openTestDatabase, silentLogger, type TestDatabase } from '../support/databases.ts';
import { recordingBus } from '../support/store-helpers.ts';

interface NotesDB {
  notes: { id: string; tenant_id: string };
}
type DB = NotesDB & OutboxTables;

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_outbox': outboxMigration(),
  '0003_outbox_trace': outboxTraceMigration(),
};

const schemaOf = (database: { location: string }): string => database.location.split(' schema ')[1] ?? '';

describe.each(backends)('outbox on $backend', ({ backend, skip }) => {
  const note = skip ? ` (skipped: ${skip})` : '';
  let t: TestDatabase<DB>;
  let extra: Database<DB>[] = [];
  const outboxes: Outbox[] = [];
  let now = Date.now();

  beforeEach(async () => {
    if (skip) return;
    t = await openTestDatabase<DB>(backend, 'outbox', migrations);
    now = Date.now();
  });
  afterEach(async () => {
    if (skip) return;
    for (const o of outboxes.splice(0)) await o.stop();
    for (const d of extra) await d.close();
    extra = [];
    await t.drop();
  });

  function outboxOn(database: Database<DB>, bus: EventBus, options: Partial<OutboxOptions> = {}): Outbox {
    const outbox = new Outbox({
      database: database as Database<unknown>,
      bus,
      logger: silentLogger,
      channel: 'outbox',
      retentionSeconds: 60,
      relayIntervalMs: 60_000,
      clock: () => now,
      ...options,
    });
    outboxes.push(outbox);
    return outbox;
  }

  /** Another pool on the same data (PostgreSQL): another replica. On SQLite, the same database. */
  async function replica(): Promise<Database<DB>> {
    if (backend === 'sqlite') return t.database;
    const schema = schemaOf(t.database);
    const database = await openDatabase<DB>({
      name: 'outbox',
      dataDir: '',
      databaseUrl: DATABASE_URL,
      schemaPrefix: schema.slice(0, -'outbox'.length),
      migrations,
      logger: silentLogger,
    });
    extra.push(database);
    return database;
  }

  const write = (database: Database<DB>, outbox: Outbox, tenantId: string, id: string, fail = false) =>
    inTransaction(database, outbox, silentLogger, async (trx, emit) => {
      await trx.insertInto('notes').values({ id, tenant_id: tenantId }).execute();
      emit({ type: 'NoteAdded', tenantId, subjectId: id, occurredAt: new Date(now).toISOString(), payload: { id } });
      emit({ type: 'NoteCounted', tenantId, subjectId: id, occurredAt: new Date(now).toISOString(), payload: {} });
      if (fail) throw new Error('rolled back');
    });

  const rows = (database: Database<DB> = t.database) => database.db.selectFrom('outbox_events').selectAll().orderBy('tenant_id').orderBy('sequence').execute();

  it.skipIf(skip)(`stores a change's events in its transaction with ids and sequences, and none of a rolled back one${note}`, async () => {
    const bus = recordingBus();
    const outbox = outboxOn(t.database, bus);
    await write(t.database, outbox, 't1', 'a');
    await expect(write(t.database, outbox, 't1', 'b', true)).rejects.toThrow('rolled back');
    await write(t.database, outbox, 't1', 'c');
    await write(t.database, outbox, 't2', 'd');
    const stored = await rows();
    expect(stored.map((r) => [r.tenant_id, r.sequence, r.type, r.subject_id])).toEqual([
      ['t1', 1, 'NoteAdded', 'a'],
      ['t1', 2, 'NoteCounted', 'a'],
      ['t1', 3, 'NoteAdded', 'c'],
      ['t1', 4, 'NoteCounted', 'c'],
      ['t2', 1, 'NoteAdded', 'd'],
      ['t2', 2, 'NoteCounted', 'd'],
    ]);
    expect(JSON.parse(stored[0]?.payload ?? '')).toEqual({ id: 'a' });
    expect(new Set(stored.map((r) => r.id)).size).toBe(6);
    expect(await outbox.head('t1')).toBe(4);
    expect(await outbox.head('nobody')).toBe(0);
    // Published after commit, as stored, on the subgraph's channel.
    await outbox.stop();
    expect(bus.published.map((e) => [e.id, e.sequence])).toEqual(
      stored
        .filter((r) => r.tenant_id === 't1')
        .concat(stored.filter((r) => r.tenant_id === 't2'))
        .map((r) => [r.id, r.sequence]),
    );
    expect((await rows()).every((r) => r.published_at !== null)).toBe(true);
  });

  it.skipIf(skip)(`gives back the sequences of a transaction rolled back after appending${note}`, async () => {
    const outbox = outboxOn(t.database, recordingBus());
    const event = { type: 'X', tenantId: 't1', subjectId: 's', occurredAt: new Date(now).toISOString(), payload: {} };
    await expect(
      t.database.transaction(async (trx) => {
        expect((await outbox.append(trx, [event, event])).map((e) => e.sequence)).toEqual([1, 2]);
        throw new Error('rolled back after the bump');
      }),
    ).rejects.toThrow('rolled back after the bump');
    const again = await t.database.transaction((trx) => outbox.append(trx, [event]));
    expect(again.map((e) => e.sequence)).toEqual([1]);
  });

  it.skipIf(skip)(`numbers a tenant's events 1…N without gaps under concurrent writers, and a reader never sees N without N-1${note}`, async () => {
    const second = await replica();
    const outboxA = outboxOn(t.database, recordingBus());
    const outboxB = outboxOn(second, recordingBus());
    let writing = true;
    const snapshots: { n: number; max: number }[] = [];
    // One statement, one snapshot: how many events a tenant has, and its highest sequence.
    const reader = (async () => {
      while (writing) {
        const r = await sql<{
          n: number | string;
          max: number | string | null;
        }>`select count(*) as n, max(sequence) as max from outbox_events where tenant_id = 't1'`.execute(second.db);
        const row = r.rows[0];
        snapshots.push({ n: Number(row?.n ?? 0), max: Number(row?.max ?? 0) });
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      const [database, outbox] = i % 2 === 0 ? [t.database, outboxA] : [second, outboxB];
      const tenant = i % 3 === 0 ? 't2' : 't1';
      // Every seventh write fails after emitting: it must leave no gap.
      writes.push(write(database, outbox, tenant, `n${i}`, i % 7 === 3).catch(() => undefined));
    }
    await Promise.all(writes);
    writing = false;
    await reader;
    const stored = await rows();
    const t1 = stored.filter((r) => r.tenant_id === 't1').map((r) => r.sequence);
    const t2 = stored.filter((r) => r.tenant_id === 't2').map((r) => r.sequence);
    const committed = (tenant: string) => Array.from({ length: 60 }, (_, i) => i).filter((i) => (i % 3 === 0 ? 't2' : 't1') === tenant && i % 7 !== 3).length;
    expect(t1).toEqual(Array.from({ length: committed('t1') * 2 }, (_, i) => i + 1));
    expect(t2).toEqual(Array.from({ length: committed('t2') * 2 }, (_, i) => i + 1));
    // Events of one transaction are consecutive.
    const byNote = new Map<string, number[]>();
    for (const r of stored) byNote.set(r.subject_id, [...(byNote.get(r.subject_id) ?? []), r.sequence]);
    for (const seqs of byNote.values()) expect(seqs[1]).toBe((seqs[0] ?? 0) + 1);
    expect(snapshots.length).toBeGreaterThan(0);
    expect(snapshots.filter((s) => s.n !== s.max)).toEqual([]);
  });

  it.skipIf(skip)(`relays rows nobody published (a crash, a failed publish), each once (PostgreSQL: with two replicas relaying at once)${note}`, async () => {
    const down = recordingBus();
    down.failing = true;
    const writer = outboxOn(t.database, down);
    for (let i = 0; i < 30; i++) await write(t.database, writer, `t${i % 2}`, `r${i}`);
    expect((await rows()).filter((r) => r.published_at === null)).toHaveLength(60);

    // Young rows are left to their writer.
    const busA = recordingBus();
    const relayA = outboxOn(t.database, busA, { batchSize: 7 });
    expect(await relayA.relay(60_000)).toBe(0);
    // SQLite has one process per database file: one relay.
    const busB = recordingBus();
    const relayB = backend === 'postgres' ? outboxOn(await replica(), busB, { batchSize: 7 }) : undefined;
    const [a, b] = await Promise.all([relayA.relay(0), relayB?.relay(0) ?? 0]);
    expect(a + b).toBe(60);
    const published = [...busA.published, ...busB.published];
    expect(published).toHaveLength(60);
    expect(new Set(published.map((e) => e.id)).size).toBe(60);
    // Per tenant, in sequence order within each relay.
    for (const bus of [busA, busB]) {
      for (const tenant of ['t0', 't1']) {
        const seqs = bus.published.filter((e) => e.tenantId === tenant).map((e) => e.sequence);
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      }
    }
    expect((await rows()).filter((r) => r.published_at === null)).toHaveLength(0);
    expect(await relayA.relay(0)).toBe(0);
  });

  it.skipIf(skip)(`marks published rows in one write for many events, not one per event${note}`, async () => {
    const outbox = outboxOn(t.database, recordingBus(), { markDelayMs: 60_000 });
    const commitsBefore = t.database.stats.commits;
    for (let i = 0; i < 20; i++) await write(t.database, outbox, 't1', `m${i}`);
    expect(t.database.stats.commits - commitsBefore).toBe(20);
    expect((await rows()).filter((r) => r.published_at === null)).toHaveLength(40);
    const queriesBefore = t.database.stats.queries;
    await outbox.stop(); // flushes the marks
    // One UPDATE for the 40 events: in a (group) transaction on SQLite (BEGIN and COMMIT are
    // statements there too), autocommitted on PostgreSQL.
    expect(t.database.stats.queries - queriesBefore).toBe(backend === 'sqlite' ? 3 : 1);
    expect(t.database.stats.commits - commitsBefore).toBe(backend === 'sqlite' ? 21 : 20);
    expect((await rows()).filter((r) => r.published_at === null)).toHaveLength(0);
  });

  it.skipIf(skip)(`prunes published rows after the retention, keeps unpublished ones and the counters${note}`, async () => {
    const bus = recordingBus();
    const outbox = outboxOn(t.database, bus, { retentionSeconds: 60 });
    await write(t.database, outbox, 't1', 'old');
    await outbox.stop();
    bus.failing = true;
    await write(t.database, outbox, 't1', 'unpublished');
    now += 30_000;
    expect(await outbox.prune()).toBe(0);
    now += 31_000;
    expect(await outbox.prune()).toBe(2);
    expect((await rows()).map((r) => r.subject_id)).toEqual(['unpublished', 'unpublished']);
    expect(await outbox.checkResume('t1', 0)).toBe('expired');
    expect(await outbox.checkResume('t1', 2)).toBe('ok');
    expect(await outbox.checkResume('t1', 5)).toBe('future');
    bus.failing = false;
    await write(t.database, outbox, 't1', 'next');
    expect((await rows()).map((r) => r.sequence)).toEqual([3, 4, 5, 6]);
  });
});
