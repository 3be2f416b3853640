import { describe, expect, it } from 'vitest';
import { sql, type Migration } from 'kysely';
import { backends, openTestDatabase } from '../support/databases.ts';
import { inTransaction } from '../../runtime/unit-of-work.ts';
import type { DomainEvent, NewDomainEvent } from '../../runtime/events.ts';

interface DB {
  notes: { id: string; body: string };
}

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('body', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

describe.each(backends)('database: $backend', ({ backend, skip }) => {
  it.skipIf(skip)(`migrates, writes and reads the same on every dialect${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const t = await openTestDatabase<DB>(backend, 'notes', migrations);
    try {
      expect(t.database.dialect).toBe(backend);
      await t.database.db.insertInto('notes').values({ id: 'n1', body: 'hello' }).execute();
      const rows = await t.database.db.selectFrom('notes').selectAll().execute();
      expect(rows).toEqual([{ id: 'n1', body: 'hello' }]);
      if (backend === 'sqlite') {
        const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(t.database.db);
        expect(mode.rows[0]?.journal_mode).toBe('wal');
      }
    } finally {
      await t.drop();
    }
  });

  it.skipIf(skip)('publishes events only after commit, and none after a rollback', async () => {
    const t = await openTestDatabase<DB>(backend, 'notes', migrations);
    try {
      const seen: DomainEvent[] = [];
      await t.bus.subscribe('NoteAdded', (e) => seen.push(e));
      const ev = (id: string): NewDomainEvent => ({ type: 'NoteAdded', tenantId: 'default', subjectId: id, occurredAt: new Date().toISOString(), payload: {} });
      await inTransaction(t.database, t.bus, t.logger, async (trx, emit) => {
        await trx.insertInto('notes').values({ id: 'ok', body: 'x' }).execute();
        emit(ev('ok'));
      });
      await expect(
        inTransaction(t.database, t.bus, t.logger, async (trx, emit) => {
          await trx.insertInto('notes').values({ id: 'bad', body: 'x' }).execute();
          emit(ev('bad'));
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      await new Promise((r) => setTimeout(r, 50));
      expect(seen.map((e) => e.subjectId)).toEqual(['ok']);
      const ids = (await t.database.db.selectFrom('notes').select('id').execute()).map((r) => r.id);
      expect(ids).toEqual(['ok']);
    } finally {
      await t.drop();
    }
  });
});
