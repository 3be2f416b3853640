// The discovery schema, the same on SQLite and PostgreSQL (timestamps ISO-8601 UTC text, JSON as
// text, booleans as 0/1 integers).
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

export const migrations: Record<string, Migration> = {
  '0001_discovery': {
    async up(db: Kysely<unknown>) {
      // The read model of the agents subgraph's agents (see store.ts for why discovery keeps one).
      await db.schema
        .createTable('agent_profiles')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        // JSON of AgentProfile minus the columns below.
        .addColumn('profile', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('last_heartbeat_at', 'text')
        .addColumn('synced_at', 'text', (c) => c.notNull())
        // Bumped by every profile change (not by heartbeats): the matching index is rebuilt when it moves.
        .addColumn('revision', 'integer', (c) => c.notNull())
        // When the profile last changed (not by heartbeats), and when the heartbeat was last recorded
        // here: what a match's background refresh reads since its last look.
        .addColumn('changed_at', 'text', (c) => c.notNull())
        .addColumn('beat_recorded_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_profiles_pk', ['tenant_id', 'agent_id'])
        .execute();
      await db.schema.createIndex('agent_profiles_agent_idx').on('agent_profiles').column('agent_id').execute();
      await db.schema.createIndex('agent_profiles_changed_idx').on('agent_profiles').columns(['tenant_id', 'changed_at']).execute();
      await db.schema.createIndex('agent_profiles_beat_idx').on('agent_profiles').columns(['tenant_id', 'beat_recorded_at']).execute();

      // Discovery's own data of an agent.
      await db.schema
        .createTable('agent_listings')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('public', 'integer', (c) => c.notNull())
        // JSON of ListingSettings minus public.
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_listings_pk', ['tenant_id', 'agent_id'])
        .execute();
      await db.schema.createIndex('agent_listings_public_idx').on('agent_listings').columns(['public', 'agent_id']).execute();

      // Tasks as orchestration's events told them: an agent's load and its finished tasks.
      await db.schema
        .createTable('agent_tasks')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        // When this row was last written here (not the event's time, which may arrive out of order).
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('agent_tasks_pk', ['tenant_id', 'task_id'])
        .execute();
      await db.schema.createIndex('agent_tasks_recorded_idx').on('agent_tasks').columns(['tenant_id', 'recorded_at']).execute();
      await db.schema.createIndex('agent_tasks_agent_idx').on('agent_tasks').columns(['tenant_id', 'agent_id', 'state']).execute();

      await db.schema
        .createTable('services')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('endpoint', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('ttl_seconds', 'integer')
        .addColumn('probe_url', 'text')
        .addColumn('probe_interval_seconds', 'integer')
        .addColumn('probe_timeout_ms', 'integer')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('last_heartbeat_at', 'text')
        .addColumn('last_checked_at', 'text')
        .addColumn('status_changed_at', 'text')
        // When the checker next looks at it (a probe, or the TTL running out).
        .addColumn('next_check_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('services_tenant_created_idx').on('services').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('services_next_check_idx').on('services').column('next_check_at').execute();

      await db.schema
        .createTable('peers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('trust', 'text', (c) => c.notNull())
        .addColumn('jwks', 'text')
        .addColumn('sync_interval_seconds', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('consecutive_failures', 'integer', (c) => c.notNull())
        .addColumn('last_sync_at', 'text')
        .addColumn('last_success_at', 'text')
        .addColumn('next_sync_at', 'text', (c) => c.notNull())
        .addColumn('agent_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('peers_next_sync_idx').on('peers').column('next_sync_at').execute();

      await db.schema
        .createTable('remote_agents')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('peer_id', 'text', (c) => c.notNull())
        .addColumn('remote_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('skills', 'text', (c) => c.notNull())
        .addColumn('card', 'text', (c) => c.notNull())
        .addColumn('source_url', 'text', (c) => c.notNull())
        .addColumn('fetched_at', 'text', (c) => c.notNull())
        .addColumn('signature_verified', 'integer', (c) => c.notNull())
        .addColumn('signature_error', 'text')
        .addPrimaryKeyConstraint('remote_agents_pk', ['peer_id', 'remote_id'])
        .execute();
      await db.schema.createIndex('remote_agents_tenant_idx').on('remote_agents').columns(['tenant_id', 'peer_id']).execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['remote_agents', 'peers', 'services', 'agent_tasks', 'agent_listings', 'agent_profiles']) await db.schema.dropTable(t).execute();
    },
  },
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0002_outbox': outboxMigration(),
  // The trace context of each event's write, so relayed events keep their trace.
  '0004_outbox_trace': outboxTraceMigration(),
  // Idempotency-Key of registerService and registerPeer (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
};
