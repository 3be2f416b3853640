// Migrations on PostgreSQL look only at the subgraph's own schema: another subgraph (or test)
// creating and dropping its schema at the same moment must not make a migration fail.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Migration } from 'kysely';
import { DATABASE_URL, dropSchema, openTestDatabase } from '../support/databases.ts';

const skip = DATABASE_URL ? false : 'DATABASE_URL is not set';
if (skip) console.warn(`[tests] PostgreSQL introspection tests are skipped: ${skip} (CI sets it).`);

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'serial', (c) => c.primaryKey())
        .addColumn('body', 'text')
        .execute();
    },
  },
};

describe('PostgreSQL introspection', () => {
  it.skipIf(skip)(`sees only its own schema's tables${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const other = await openTestDatabase('postgres', 'others', migrations);
    const own = await openTestDatabase('postgres', 'notes', migrations);
    try {
      const tables = await own.database.db.introspection.getTables();
      expect(tables.map((t) => [t.schema, t.name])).toEqual([[own.database.location.split(' schema ')[1], 'notes']]);
      const notes = tables[0]!;
      expect(notes.columns.map((c) => [c.name, c.isAutoIncrementing, c.isNullable])).toEqual([
        ['id', true, false],
        ['body', false, true],
      ]);
      const withKysely = await own.database.db.introspection.getTables({ withInternalKyselyTables: true });
      expect(withKysely.map((t) => t.name).sort()).toEqual(['kysely_migration', 'kysely_migration_lock', 'notes']);
    } finally {
      await own.drop();
      await other.drop();
    }
  });

  it.skipIf(skip)(`migrates while other schemas are created and dropped${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    let churning = true;
    const prefix = `churn${randomBytes(3).toString('hex')}_`;
    // Schemas with tables that appear and vanish while the migrations below introspect.
    const churn = (async () => {
      for (let i = 0; churning; i++) {
        const schema = `${prefix}${i}`;
        await client.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id serial primary key)`);
        await client.query(`DROP SCHEMA "${schema}" CASCADE`);
      }
    })();
    let migrated = 0;
    try {
      for (let i = 0; i < 15; i++) {
        const t = await openTestDatabase('postgres', 'notes', migrations);
        migrated += (await t.database.db.introspection.getTables()).length;
        await t.drop();
      }
    } finally {
      churning = false;
      await churn;
      await client.end();
      await dropSchema(`${prefix}0`);
    }
    expect(migrated).toBe(15);
  });
});
