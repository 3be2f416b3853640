// Working memory's table (the embedded and PostgreSQL store; with REDIS_URL entries live in Redis).
import type { Kysely, Migration } from 'kysely';

export const workingMemoryMigrations: Record<string, Migration> = {
  '0150_working_memory': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('working_memory')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        // JSON.
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('working_memory_pk', ['tenant_id', 'namespace', 'key'])
        .execute();
      await db.schema.createIndex('working_memory_expiry_idx').on('working_memory').column('expires_at').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('working_memory').execute();
    },
  },
};
