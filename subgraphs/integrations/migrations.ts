// The integrations schema: webhook endpoints and their secrets, the durable delivery queue and its
// attempt log, the events taken from the other subgraphs (with a cursor per source and tenant),
// inbound integrations and the delivery ids they have seen, triggers and their runs. The same on
// SQLite and PostgreSQL: timestamps ISO-8601 UTC text, JSON as text.
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

export const migrations: Record<string, Migration> = {
  '0001_integrations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('webhook_endpoints')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        // JSON string[].
        .addColumn('event_types', 'text', (c) => c.notNull())
        .addColumn('filter', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('disabled_reason', 'text')
        .addColumn('rate_limit_per_second', 'integer')
        // First failure since the last success; null while it succeeds.
        .addColumn('failing_since', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('webhook_endpoints_tenant_idx').on('webhook_endpoints').columns(['tenant_id', 'created_at', 'id']).execute();

      await db.schema
        .createTable('webhook_secrets')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .execute();
      await db.schema.createIndex('webhook_secrets_endpoint_idx').on('webhook_secrets').column('endpoint_id').execute();

      // Every event taken from a source's log, kept for deliveries' bodies and replays.
      await db.schema
        .createTable('integration_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('sequence', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('occurred_at', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('integration_events_tenant_received_idx').on('integration_events').columns(['tenant_id', 'received_at']).execute();

      // How far each source's log of each tenant has been taken in.
      await db.schema
        .createTable('event_cursors')
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('last_sequence', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('event_cursors_pk', ['source', 'tenant_id'])
        .execute();

      // The durable queue: one row per (endpoint, message), tried until SUCCEEDED or DEAD.
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        // JSON: the body sent.
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempt_count', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text')
        // A sender holds the row until then; after a crash another takes it once it passed.
        .addColumn('locked_until', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('webhook_deliveries_message_uq', ['endpoint_id', 'message_id'])
        .execute();
      await db.schema.createIndex('webhook_deliveries_due_idx').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
      await db.schema.createIndex('webhook_deliveries_endpoint_idx').on('webhook_deliveries').columns(['endpoint_id', 'created_at', 'id']).execute();

      await db.schema
        .createTable('webhook_attempts')
        .addColumn('delivery_id', 'text', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('status_code', 'integer')
        .addColumn('latency_ms', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('response_excerpt', 'text')
        .addPrimaryKeyConstraint('webhook_attempts_pk', ['delivery_id', 'attempt'])
        .execute();

      await db.schema
        .createTable('inbound_integrations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();

      // Delivery ids an inbound integration accepted: a replay of one is refused.
      await db.schema
        .createTable('inbound_receipts')
        .addColumn('integration_id', 'text', (c) => c.notNull())
        .addColumn('delivery_id', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('inbound_receipts_pk', ['integration_id', 'delivery_id'])
        .execute();
      await db.schema.createIndex('inbound_receipts_received_idx').on('inbound_receipts').column('received_at').execute();

      await db.schema
        .createTable('triggers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('filter', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('action_config', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('triggers_tenant_idx').on('triggers').columns(['tenant_id', 'created_at', 'id']).execute();

      // At most one run per (trigger, event): the unique key is the at-most-once guarantee.
      await db.schema
        .createTable('trigger_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('trigger_id', 'text', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('result', 'text')
        .addColumn('error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('trigger_runs_once_uq', ['trigger_id', 'event_id'])
        .execute();
      await db.schema.createIndex('trigger_runs_trigger_idx').on('trigger_runs').columns(['trigger_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('trigger_runs_status_idx').on('trigger_runs').column('status').execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of [
        'trigger_runs',
        'triggers',
        'inbound_receipts',
        'inbound_integrations',
        'webhook_attempts',
        'webhook_deliveries',
        'event_cursors',
        'integration_events',
        'webhook_secrets',
        'webhook_endpoints',
      ])
        await db.schema.dropTable(t).execute();
    },
  },
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0002_outbox': outboxMigration(),
  // Idempotency-Key of the create mutations (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
  // The trace context of each event's write, so relayed events keep their trace.
  '0004_outbox_trace': outboxTraceMigration(),
};
