// The governance schema, the same on SQLite and PostgreSQL (timestamps as ISO-8601 UTC text,
// lists as JSON text).
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

export const migrations: Record<string, Migration> = {
  '0001_api_keys': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        // JSON string[].
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        // SHA-256 of the whole key, hex; the key itself is never stored.
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .addColumn('revoked_by', 'text')
        .execute();
      // A presented key is found by its prefix before the tenant is known: unique across tenants.
      await db.schema.createIndex('api_keys_prefix_idx').on('api_keys').column('prefix').unique().execute();
      await db.schema.createIndex('api_keys_tenant_created_idx').on('api_keys').columns(['tenant_id', 'created_at', 'id']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('api_keys').execute();
    },
  },
  '0002_agent_credentials': {
    async up(db: Kysely<unknown>) {
      // Set on an agent credential: the agent it acts as. Null for a partner key.
      await db.schema.alterTable('api_keys').addColumn('agent_id', 'text').execute();
      // An agent's credentials are listed, counted and rotated by agent.
      await db.schema.createIndex('api_keys_tenant_agent_idx').on('api_keys').columns(['tenant_id', 'agent_id']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex('api_keys_tenant_agent_idx').execute();
      await db.schema.alterTable('api_keys').dropColumn('agent_id').execute();
    },
  },
  // Idempotency-Key of the create mutations, stored with the change (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
  // The events of every change, written in its transaction (runtime/outbox.ts): key creations and
  // revocations are retained and relayed like every other subgraph's (webhooks subscribe to them).
  '0004_outbox': outboxMigration(),
  '0005_outbox_trace': outboxTraceMigration(),
};
