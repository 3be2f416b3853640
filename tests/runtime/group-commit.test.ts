// Group commit on SQLite (runtime/group-commit.ts through Database.transaction and inTransaction):
// concurrent writes share a transaction and a COMMIT, yet each succeeds or fails on its own, in
// arrival order, publishes only once committed, and is answered only once durable.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql, type Migration, type Transaction } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDatabase, type Database } from '../../runtime/db.ts';
import { createEventBus, type EventBus, type NewDomainEvent } from '../../runtime/events.ts';
import type { Logger } from '../../runtime/logger.ts';
import { inTransaction } from '../../runtime/unit-of-work.ts';
import { REDIS_URL, silentLogger } from '../support/databases.ts';

interface DB {
  notes: { id: string; body: string };
  children: { id: string; note_id: string };
}

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('body', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('children')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('note_id', 'text', (c) => c.notNull().references('notes.id'))
        .execute();
    },
  },
};

interface Opened {
  database: Database<DB>;
  bus: EventBus;
  logger: Logger;
  dir: string;
}

const opened: Opened[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.database.close();
    await o.bus.close();
    rmSync(o.dir, { recursive: true, force: true });
  }
});

async function open(groupCommitMax?: number): Promise<Opened> {
  const dir = mkdtempSync(join(tmpdir(), 'group-commit-'));
  const database = await openDatabase<DB>({ name: 'notes', dataDir: dir, migrations, logger: silentLogger, ...(groupCommitMax ? { groupCommitMax } : {}) });
  const o = { database, bus: createEventBus({ channelPrefix: 'test', logger: silentLogger }), logger: silentLogger, dir };
  opened.push(o);
  return o;
}

const insert =
  (id: string, body = id) =>
  async (trx: Transaction<DB>) => {
    await trx.insertInto('notes').values({ id, body }).execute();
    return id;
  };

async function noteIds(t: Opened): Promise<string[]> {
  return (await t.database.db.selectFrom('notes').select('id').orderBy('id').execute()).map((r) => r.id);
}

describe('group commit (SQLite)', () => {
  it('commits writes that arrive together once, and answers each with its own result', async () => {
    const t = await open();
    const before = t.database.stats.commits;
    const results = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => t.database.transaction(insert(id))));
    expect(results).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(t.database.stats.commits - before).toBe(1);
    expect(await noteIds(t)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('rolls back only the write that failed, which gets its own error', async () => {
    const t = await open();
    const outcomes = await Promise.allSettled([
      t.database.transaction(insert('a')),
      t.database.transaction(async (trx) => {
        await trx.insertInto('notes').values({ id: 'half', body: 'x' }).execute();
        throw new Error('domain rule broken');
      }),
      t.database.transaction(insert('c')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ message: 'domain rule broken' });
    expect(await noteIds(t)).toEqual(['a', 'c']);
  });

  it('turns a unique violation into that write’s own error, as it would alone', async () => {
    const t = await open();
    const outcomes = await Promise.allSettled([
      t.database.transaction(insert('same', 'first')),
      t.database.transaction(insert('same', 'second')),
      t.database.transaction(insert('z')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(await t.database.db.selectFrom('notes').selectAll().orderBy('id').execute()).toEqual([
      { id: 'same', body: 'first' },
      { id: 'z', body: 'z' },
    ]);
  });

  it('runs writes in arrival order, each seeing the ones before it', async () => {
    const t = await open();
    const order: string[] = [];
    const countThenInsert = (id: string) =>
      t.database.transaction(async (trx) => {
        order.push(id);
        const { n } = await trx
          .selectFrom('notes')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow();
        await trx
          .insertInto('notes')
          .values({ id, body: String(n) })
          .execute();
        return Number(n);
      });
    const seen = await Promise.all(['w1', 'w2', 'w3', 'w4'].map(countThenInsert));
    expect(order).toEqual(['w1', 'w2', 'w3', 'w4']);
    expect(seen).toEqual([0, 1, 2, 3]);
  });

  it('answers a write only once another connection can read it (the COMMIT returned)', async () => {
    const t = await open();
    const reader = new BetterSqlite3(t.database.location, { readonly: true });
    try {
      const visibleAtAnswer = await Promise.all(
        ['a', 'b', 'c'].map((id) => t.database.transaction(insert(id)).then(() => reader.prepare('select id from notes where id = ?').get(id) !== undefined)),
      );
      expect(visibleAtAnswer).toEqual([true, true, true]);
    } finally {
      reader.close();
    }
  });

  const buses = [
    { kind: 'in-process', url: undefined, skip: false as const },
    { kind: 'redis', url: REDIS_URL, skip: REDIS_URL ? (false as const) : 'REDIS_URL is not set' },
  ];
  for (const { kind, url, skip } of buses) {
    it.skipIf(skip)(`publishes the events of committed writes only, in commit order (${kind} bus${skip ? `, skipped: ${skip}` : ''})`, async () => {
      const t = await open();
      const bus = createEventBus({ redisUrl: url, channelPrefix: `group-commit-${randomUUID()}`, logger: silentLogger });
      try {
        const seen: string[] = [];
        await bus.subscribe('NoteAdded', (e) => seen.push(e.subjectId));
        const ev = (id: string): NewDomainEvent => ({
          type: 'NoteAdded',
          tenantId: 'default',
          subjectId: id,
          occurredAt: new Date().toISOString(),
          payload: {},
        });
        const write = (id: string, fail = false) =>
          inTransaction(t.database, bus, t.logger, async (trx, emit) => {
            await trx.insertInto('notes').values({ id, body: id }).execute();
            emit(ev(`${id}.1`));
            emit(ev(`${id}.2`));
            if (fail) throw new Error(`${id} failed`);
          });
        const commitsBefore = t.database.stats.commits;
        const outcomes = await Promise.allSettled([write('a'), write('b', true), write('c'), write('d')]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
        expect(t.database.stats.commits - commitsBefore).toBe(1);
        await vi.waitFor(() => expect(seen).toHaveLength(6));
        expect(seen).toEqual(['a.1', 'a.2', 'c.1', 'c.2', 'd.1', 'd.2']);
      } finally {
        await bus.close();
      }
    });
  }

  it('keeps groups within SQLITE_GROUP_COMMIT_MAX, and commits each write alone at 1', async () => {
    for (const [max, commits] of [
      [1, 5],
      [2, 3],
    ] as const) {
      const t = await open(max);
      const before = t.database.stats.commits;
      await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => t.database.transaction(insert(id))));
      expect(t.database.stats.commits - before).toBe(commits);
      expect(await noteIds(t)).toEqual(['a', 'b', 'c', 'd', 'e']);
    }
  });

  it('runs the others again alone when SQLite ends the shared transaction in the middle of a write', async () => {
    const t = await open();
    const runs: Record<string, number> = {};
    const counted = (id: string) => async (trx: Transaction<DB>) => {
      runs[id] = (runs[id] ?? 0) + 1;
      return insert(id)(trx);
    };
    const outcomes = await Promise.allSettled([
      t.database.transaction(counted('a')),
      t.database.transaction(async (trx) => {
        // What SQLite does by itself on a full disk or an I/O error in the middle of a statement.
        await sql`rollback`.execute(trx);
        throw new Error('disk full');
      }),
      t.database.transaction(counted('c')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ message: 'disk full' });
    // a ran in the group (rolled back with it) and once more alone; c only alone.
    expect(runs).toEqual({ a: 2, c: 1 });
    expect(await noteIds(t)).toEqual(['a', 'c']);
    // The connection is usable afterwards.
    await t.database.transaction(insert('d'));
    expect(await noteIds(t)).toEqual(['a', 'c', 'd']);
  });

  it('runs the writes alone when SQLite refuses the shared COMMIT, so only the culprit fails', async () => {
    const t = await open();
    const outcomes = await Promise.allSettled([
      t.database.transaction(insert('a')),
      t.database.transaction(async (trx) => {
        // A deferred foreign key is checked at COMMIT: the whole group's COMMIT fails on it.
        await sql`pragma defer_foreign_keys = on`.execute(trx);
        await trx.insertInto('children').values({ id: 'orphan', note_id: 'missing' }).execute();
      }),
      t.database.transaction(insert('c')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
    expect(await noteIds(t)).toEqual(['a', 'c']);
    expect(await t.database.db.selectFrom('children').selectAll().execute()).toEqual([]);
  });

  it('lets reads in between groups and keeps working after a failed group', async () => {
    const t = await open();
    await Promise.allSettled([t.database.transaction(insert('a')), t.database.transaction(insert('a'))]);
    const [read, written] = await Promise.all([noteIds(t), t.database.transaction(insert('b'))]);
    expect(read).toEqual(['a']);
    expect(written).toBe('b');
    expect(await noteIds(t)).toEqual(['a', 'b']);
  });
});
