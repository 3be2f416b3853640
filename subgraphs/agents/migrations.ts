// The agents schema, the same on SQLite and PostgreSQL: timestamps are ISO-8601 UTC text and
// structured fields JSON text, so nothing here depends on a dialect's own types.
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

export const migrations: Record<string, Migration> = {
  '0001_agents': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('agent_version', 'text', (c) => c.notNull())
        .addColumn('endpoint_url', 'text')
        .addColumn('provider', 'text')
        .addColumn('capabilities', 'text', (c) => c.notNull())
        .addColumn('skills', 'text', (c) => c.notNull())
        // Read with the row, so a batch of agents is one statement; agent_labels indexes them.
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('default_input_modes', 'text', (c) => c.notNull())
        .addColumn('default_output_modes', 'text', (c) => c.notNull())
        .addColumn('card', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('heartbeat_interval_seconds', 'integer', (c) => c.notNull())
        .addColumn('last_heartbeat_at', 'text')
        // Name and description case-folded by the application (see domain.searchText).
        .addColumn('search_text', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .execute();
      // Keyset pagination: tenant, then (created_at, id) in either direction.
      await db.schema.createIndex('agents_tenant_created_idx').on('agents').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('agents_tenant_status_created_idx').on('agents').columns(['tenant_id', 'status', 'created_at', 'id']).execute();

      await db.schema
        .createTable('agent_skill_tags')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('tag', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_skill_tags_pk', ['tenant_id', 'agent_id', 'tag'])
        .addForeignKeyConstraint('agent_skill_tags_agent_fk', ['agent_id'], 'agents', ['id'], (fk) => fk.onDelete('cascade'))
        .execute();
      await db.schema.createIndex('agent_skill_tags_tag_idx').on('agent_skill_tags').columns(['tenant_id', 'tag', 'agent_id']).execute();

      await db.schema
        .createTable('agent_labels')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_labels_pk', ['tenant_id', 'agent_id', 'key'])
        .addForeignKeyConstraint('agent_labels_agent_fk', ['agent_id'], 'agents', ['id'], (fk) => fk.onDelete('cascade'))
        .execute();
      await db.schema.createIndex('agent_labels_key_value_idx').on('agent_labels').columns(['tenant_id', 'key', 'value', 'agent_id']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('agent_labels').execute();
      await db.schema.dropTable('agent_skill_tags').execute();
      await db.schema.dropTable('agents').execute();
    },
  },
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0002_outbox': outboxMigration(),
  // Idempotency-Key of the create mutations, stored with the change (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
  // The trace context of each event's write, so relayed events keep their trace.
  '0004_outbox_trace': outboxTraceMigration(),
};
