// The knowledge graph's tables, appended to the memory subgraph's migrations (0100_graph_...).
// Entities are unique per tenant by (type, key); relations are rows in time: a change closes the
// open row (valid_to, superseded_at) and opens a new one, so nothing is ever overwritten. The
// traversal indexes lead with source_id / target_id (ids are unique across tenants).
import { type Kysely, type Migration, PostgresAdapter, sql } from 'kysely';

const isPostgres = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof PostgresAdapter;

export const graphMigrations: Record<string, Migration> = {
  '0100_graph_entities_relations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('graph_entities')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('namespace', 'text', (c) => c.notNull())
        // JSON object.
        .addColumn('properties', 'text', (c) => c.notNull())
        // JSON number[], or null.
        .addColumn('vector', 'text')
        .addColumn('dimension', 'integer')
        // The entity this one was merged into (then deleted_at is set too).
        .addColumn('merged_into', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('deleted_at', 'text')
        .addColumn('version', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('graph_entities_key_idx').on('graph_entities').columns(['tenant_id', 'type', 'key']).unique().execute();
      await db.schema.createIndex('graph_entities_namespace_idx').on('graph_entities').columns(['tenant_id', 'namespace']).execute();

      await db.schema
        .createTable('graph_entity_memories')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('memory_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('graph_entity_memories_pk', ['entity_id', 'memory_id'])
        .execute();
      await db.schema.createIndex('graph_entity_memories_memory_idx').on('graph_entity_memories').columns(['tenant_id', 'memory_id']).execute();

      await db.schema
        .createTable('graph_relations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('source_id', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('properties', 'text', (c) => c.notNull())
        .addColumn('weight', 'double precision', (c) => c.notNull())
        // Valid time: when the relation became true and stopped being true (null: still true).
        .addColumn('valid_from', 'text', (c) => c.notNull())
        .addColumn('valid_to', 'text')
        // Transaction time: when this row was written, and when a later write closed it.
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .addColumn('superseded_at', 'text')
        .execute();
      // One hop out of / into a node, filtered by type and time, without touching the table for the other end.
      await db.schema.createIndex('graph_relations_source_idx').on('graph_relations').columns(['source_id', 'type', 'valid_from', 'target_id']).execute();
      await db.schema.createIndex('graph_relations_target_idx').on('graph_relations').columns(['target_id', 'type', 'valid_from', 'source_id']).execute();
      // One current row per (source, type, target): a concurrent second upsert of a new relation fails instead of doubling it.
      await db.schema
        .createIndex('graph_relations_current_idx')
        .on('graph_relations')
        .columns(['source_id', 'type', 'target_id'])
        .unique()
        .where(sql.ref('superseded_at'), 'is', null)
        .execute();
      await db.schema.createIndex('graph_relations_tenant_idx').on('graph_relations').columns(['tenant_id', 'recorded_at']).execute();

      if (isPostgres(db)) {
        await sql`alter table graph_entities add column search_vector tsvector generated always as (to_tsvector('english', name || ' ' || properties)) stored`.execute(
          db,
        );
        await sql`create index graph_entities_search_idx on graph_entities using gin (search_vector)`.execute(db);
      } else {
        await sql`create virtual table graph_entities_fts using fts5(text, entity_id unindexed, tenant_id unindexed, tokenize = 'porter unicode61 remove_diacritics 2')`.execute(
          db,
        );
      }
    },
    async down(db: Kysely<unknown>) {
      if (!isPostgres(db)) await sql`drop table graph_entities_fts`.execute(db);
      await db.schema.dropTable('graph_relations').execute();
      await db.schema.dropTable('graph_entity_memories').execute();
      await db.schema.dropTable('graph_entities').execute();
    },
  },
  // An entity's past states (graph/versions.ts): properties, name and namespace kept in time.
  '0101_graph_entity_versions': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('graph_entity_versions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('properties', 'text', (c) => c.notNull())
        .addColumn('deleted_at', 'text')
        .addColumn('valid_from', 'text', (c) => c.notNull())
        .addColumn('valid_to', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('graph_entity_versions_entity_idx').on('graph_entity_versions').columns(['entity_id', 'valid_to']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('graph_entity_versions').execute();
    },
  },
};
