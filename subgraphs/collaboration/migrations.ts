// The collaboration schema: channels, their participants, messages with their replaced versions,
// and presence (live connections and each participant's status). Timestamps are ISO-8601 UTC
// text, parts and mentions JSON text: the same rows on SQLite and PostgreSQL.
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

export const migrations: Record<string, Migration> = {
  '0001_channels': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('channels')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('title', 'text')
        .addColumn('task_id', 'text')
        .addColumn('workflow_run_id', 'text')
        // direct:<a>|<b>, task:<id>, run:<id>; null for a group: at most one channel per key.
        .addColumn('subject_key', 'text')
        .addColumn('last_sequence', 'integer', (c) => c.notNull())
        .addColumn('participant_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('channels_subject_idx').unique().on('channels').columns(['tenant_id', 'subject_key']).execute();
      await db.schema.createIndex('channels_tenant_created_idx').on('channels').columns(['tenant_id', 'created_at', 'id']).execute();

      await db.schema
        .createTable('channel_participants')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('channel_id', 'text', (c) => c.notNull())
        // agent:<id> or user:<subject>
        .addColumn('participant', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('joined_at', 'text', (c) => c.notNull())
        .addColumn('last_read_sequence', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('channel_participants_pk', ['channel_id', 'participant'])
        .execute();
      await db.schema.createIndex('channel_participants_member_idx').on('channel_participants').columns(['tenant_id', 'participant']).execute();

      await db.schema
        .createTable('messages')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('channel_id', 'text', (c) => c.notNull())
        .addColumn('sequence', 'integer', (c) => c.notNull())
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('client_message_id', 'text')
        // JSON MessagePart[]
        .addColumn('parts', 'text', (c) => c.notNull())
        .addColumn('reply_to_id', 'text')
        .addColumn('thread_id', 'text', (c) => c.notNull())
        // JSON string[] of participant keys
        .addColumn('mentions', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('edited_at', 'text')
        .addColumn('deleted_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('messages_channel_sequence_idx').unique().on('messages').columns(['channel_id', 'sequence']).execute();
      await db.schema.createIndex('messages_client_id_idx').unique().on('messages').columns(['channel_id', 'sender', 'client_message_id']).execute();
      await db.schema.createIndex('messages_thread_idx').on('messages').columns(['channel_id', 'thread_id', 'sequence']).execute();
      // The rate limit counts a sender's recent messages.
      await db.schema.createIndex('messages_sender_created_idx').on('messages').columns(['tenant_id', 'sender', 'created_at']).execute();

      await db.schema
        .createTable('message_versions')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('parts', 'text', (c) => c.notNull())
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('message_versions_pk', ['message_id', 'version'])
        .execute();

      // One row per live connection: a subscription (refreshed by the replica serving it) or a heartbeat.
      await db.schema
        .createTable('presence_connections')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('participant', 'text', (c) => c.notNull())
        .addColumn('replica_id', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('presence_connections_participant_idx').on('presence_connections').columns(['tenant_id', 'participant']).execute();
      await db.schema.createIndex('presence_connections_replica_idx').on('presence_connections').column('replica_id').execute();
      await db.schema.createIndex('presence_connections_expires_idx').on('presence_connections').column('expires_at').execute();

      await db.schema
        .createTable('presence')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('participant', 'text', (c) => c.notNull())
        .addColumn('chosen_status', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('connections', 'integer', (c) => c.notNull())
        .addColumn('changed_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('presence_pk', ['tenant_id', 'participant'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['presence', 'presence_connections', 'message_versions', 'messages', 'channel_participants', 'channels'])
        await db.schema.dropTable(t).execute();
    },
  },
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0002_outbox': outboxMigration(),
  // Idempotency-Key of createChannel (runtime/idempotency.ts).
  '0003_idempotency': idempotencyMigration(),
  // The trace context of each event's write, so relayed events keep their trace.
  '0004_outbox_trace': outboxTraceMigration(),
};
