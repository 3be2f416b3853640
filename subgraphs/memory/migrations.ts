// The memory schema. Rows are the same on SQLite and PostgreSQL (timestamps ISO-8601 UTC text,
// metadata JSON text, vectors float64 bytes since 0005); only the full-text index is each engine's own: an FTS5 table
// on SQLite, a generated tsvector column with a GIN index on PostgreSQL.
import { type Kysely, type Migration, PostgresAdapter, sql } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';
import { decodeVector, encodeVector } from './store/vectors.ts';
import { graphMigrations } from './graph/migrations.ts';
import { workingMemoryMigrations } from './working/migrations.ts';

const isPostgres = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof PostgresAdapter;

export const migrations: Record<string, Migration> = {
  '0001_memories': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('memories')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        // JSON object.
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('importance', 'double precision', (c) => c.notNull())
        // JSON number[], or null.
        .addColumn('vector', 'text')
        .addColumn('dimension', 'integer')
        .addColumn('source_agent_id', 'text')
        .addColumn('source_task_id', 'text')
        .addColumn('source_workflow_run_id', 'text')
        .addColumn('expires_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .execute();
      // Keyset pagination, and prefix reads (namespace >= prefix and < prefix + 0x7f... ranges).
      await db.schema.createIndex('memories_tenant_created_idx').on('memories').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('memories_tenant_namespace_idx').on('memories').columns(['tenant_id', 'namespace']).execute();
      await db.schema.createIndex('memories_tenant_task_idx').on('memories').columns(['tenant_id', 'source_task_id']).execute();
      await db.schema.createIndex('memories_expires_idx').on('memories').column('expires_at').execute();

      // The versions an update replaced; the current one lives in memories.
      await db.schema
        .createTable('memory_versions')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('memory_id', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('importance', 'double precision', (c) => c.notNull())
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('memory_versions_pk', ['memory_id', 'version'])
        .execute();

      // One vector dimension per tenant, fixed by the first vector stored: a search compares like with like.
      await db.schema
        .createTable('memory_vector_spaces')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey())
        .addColumn('dimension', 'integer', (c) => c.notNull())
        .execute();

      if (isPostgres(db)) {
        // 'english' stems (remember/remembered match), like FTS5's porter tokenizer on SQLite.
        await sql`alter table memories add column search_vector tsvector generated always as (to_tsvector('english', text)) stored`.execute(db);
        await sql`create index memories_search_idx on memories using gin (search_vector)`.execute(db);
      } else {
        await sql`create virtual table memories_fts using fts5(text, memory_id unindexed, tenant_id unindexed, tokenize = 'porter unicode61 remove_diacritics 2')`.execute(
          db,
        );
      }
    },
    async down(db: Kysely<unknown>) {
      if (!isPostgres(db)) await sql`drop table memories_fts`.execute(db);
      await db.schema.dropTable('memory_vector_spaces').execute();
      await db.schema.dropTable('memory_versions').execute();
      await db.schema.dropTable('memories').execute();
    },
  },
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0002_outbox': outboxMigration(),
  // Idempotency-Key of remember and rememberBatch (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
  '0004_embedding_model': {
    async up(db: Kysely<unknown>) {
      // The model that made the vector when the subgraph embedded the text; null for a vector the client supplied.
      await db.schema.alterTable('memories').addColumn('embedding_model', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('memories').dropColumn('embedding_model').execute();
    },
  },
  // The trace context of each event's write, so relayed events keep their trace.
  '0006_outbox_trace': outboxTraceMigration(),
  '0005_binary_vectors': {
    async up(db: Kysely<unknown>) {
      // Vectors as little-endian float64 bytes (store/vectors.ts) instead of JSON text: less than
      // half the size, nothing to parse. Existing vectors are converted.
      await db.schema
        .alterTable('memories')
        .addColumn('embedding', isPostgres(db) ? 'bytea' : 'blob')
        .execute();
      const memories = db as Kysely<{ memories: { id: string; vector: string | null; embedding: Uint8Array | null } }>;
      let after = '';
      for (;;) {
        const rows = await memories
          .selectFrom('memories')
          .select(['id', 'vector'])
          .where('vector', 'is not', null)
          .where('id', '>', after)
          .orderBy('id')
          .limit(500)
          .execute();
        for (const r of rows) {
          await memories
            .updateTable('memories')
            .set({ embedding: encodeVector(JSON.parse(r.vector as string) as number[]) })
            .where('id', '=', r.id)
            .execute();
        }
        const last = rows.at(-1);
        if (!last) break;
        after = last.id;
      }
      await db.schema.alterTable('memories').dropColumn('vector').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('memories').addColumn('vector', 'text').execute();
      const memories = db as Kysely<{ memories: { id: string; vector: string | null; embedding: Uint8Array | null } }>;
      const rows = await memories.selectFrom('memories').select(['id', 'embedding']).where('embedding', 'is not', null).execute();
      for (const r of rows) {
        await memories
          .updateTable('memories')
          .set({ vector: JSON.stringify(Array.from(decodeVector(r.embedding as Uint8Array))) })
          .where('id', '=', r.id)
          .execute();
      }
      await db.schema.alterTable('memories').dropColumn('embedding').execute();
    },
  },
  // The knowledge graph (graph/migrations.ts), after everything else.
  ...graphMigrations,
  ...workingMemoryMigrations,
};
