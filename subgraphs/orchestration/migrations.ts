// Schema of the orchestration subgraph. Only portable types (text, integer, double precision), so
// the same migrations run on SQLite and PostgreSQL.
import type { Kysely, Migration } from 'kysely';
import { idempotencyMigration } from '../../runtime/idempotency.ts';
import { outboxMigration, outboxTraceMigration } from '../../runtime/outbox.ts';

const initial: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('tasks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('input', 'text')
      .addColumn('required_skill_tags', 'text', (c) => c.notNull())
      .addColumn('priority', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('retry_initial_interval_seconds', 'double precision', (c) => c.notNull())
      .addColumn('retry_backoff_coefficient', 'double precision', (c) => c.notNull())
      .addColumn('retry_maximum_interval_seconds', 'double precision', (c) => c.notNull())
      .addColumn('retry_maximum_attempts', 'integer', (c) => c.notNull())
      .addColumn('timeout_seconds', 'integer', (c) => c.notNull())
      .addColumn('progress_percent', 'integer')
      .addColumn('progress_message', 'text')
      .addColumn('progress_updated_at', 'text')
      .addColumn('result', 'text')
      .addColumn('error', 'text')
      .addColumn('agent_id', 'text')
      .addColumn('lease_expires_at', 'text')
      .addColumn('attempt_started_at', 'text')
      .addColumn('attempt_deadline_at', 'text')
      .addColumn('input_requested_at', 'text')
      .addColumn('available_at', 'text', (c) => c.notNull())
      .addColumn('workflow_run_id', 'text')
      .addColumn('workflow_step_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('version', 'integer', (c) => c.notNull())
      .execute();
    // The claim query: SUBMITTED tasks of a tenant that are available now, by priority.
    await db.schema.createIndex('tasks_claim').on('tasks').columns(['tenant_id', 'state', 'available_at', 'priority']).execute();
    // Keyset pagination, newest first.
    await db.schema.createIndex('tasks_page').on('tasks').columns(['tenant_id', 'created_at', 'id']).execute();
    // Agent.tasks and Agent.activeTaskCount.
    await db.schema.createIndex('tasks_agent').on('tasks').columns(['tenant_id', 'agent_id', 'state']).execute();
    await db.schema.createIndex('tasks_run').on('tasks').columns(['tenant_id', 'workflow_run_id']).execute();
    // The sweeper scans all tenants for attempts whose lease or deadline passed.
    await db.schema.createIndex('tasks_lease').on('tasks').columns(['state', 'lease_expires_at']).execute();
    await db.schema.createIndex('tasks_deadline').on('tasks').columns(['state', 'attempt_deadline_at']).execute();

    await db.schema
      .createTable('task_required_tags')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
      .addColumn('tag', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('task_required_tags_pk', ['task_id', 'tag'])
      .execute();
    await db.schema.createIndex('task_required_tags_tag').on('task_required_tags').columns(['tenant_id', 'tag', 'task_id']).execute();

    await db.schema
      .createTable('workflow_definitions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('steps', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('workflow_definitions_name_version', ['tenant_id', 'name', 'version'])
      .execute();
    await db.schema.createIndex('workflow_definitions_page').on('workflow_definitions').columns(['tenant_id', 'created_at', 'id']).execute();

    await db.schema
      .createTable('workflow_runs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('definition_id', 'text', (c) => c.notNull().references('workflow_definitions.id'))
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('input', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .addColumn('version', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('workflow_runs_page').on('workflow_runs').columns(['tenant_id', 'created_at', 'id']).execute();
    await db.schema.createIndex('workflow_runs_definition').on('workflow_runs').columns(['tenant_id', 'definition_id']).execute();

    await db.schema
      .createTable('workflow_step_runs')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('run_id', 'text', (c) => c.notNull().references('workflow_runs.id').onDelete('cascade'))
      .addColumn('step_id', 'text', (c) => c.notNull())
      .addColumn('position', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('task_id', 'text')
      .addPrimaryKeyConstraint('workflow_step_runs_pk', ['run_id', 'step_id'])
      .execute();
  },
  async down(db: Kysely<unknown>) {
    for (const table of ['workflow_step_runs', 'workflow_runs', 'workflow_definitions', 'task_required_tags', 'tasks']) {
      await db.schema.dropTable(table).execute();
    }
  },
};

// Indexes for the two queries that read far more than they returned: claiming a task, and
// Agent.tasks (the tasks of many agents at once, for a federated join).
const claimAndAgentPageIndexes: Migration = {
  async up(db: Kysely<unknown>) {
    // A claim walks a tenant's SUBMITTED tasks in claim order (highest priority, then oldest) and
    // stops at the first one the claimer may take; available_at is read from the index too.
    // tasks_claim could only filter, so every claim sorted the whole backlog first.
    await db.schema.createIndex('tasks_claim_order').on('tasks').columns(['tenant_id', 'state', 'priority desc', 'created_at', 'id', 'available_at']).execute();
    // Its (tenant_id, state) prefix serves whatever tasks_claim served: one index less to keep up on every task write.
    await db.schema.dropIndex('tasks_claim').execute();
    // Agent.tasks: each agent's tasks newest first, numbered from the index alone; the state is
    // in it so that a state filter needs no table read either.
    await db.schema.createIndex('tasks_agent_recent').on('tasks').columns(['tenant_id', 'agent_id', 'created_at desc', 'id desc', 'state']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex('tasks_agent_recent').execute();
    await db.schema.createIndex('tasks_claim').on('tasks').columns(['tenant_id', 'state', 'available_at', 'priority']).execute();
    await db.schema.dropIndex('tasks_claim_order').execute();
  },
};

// Who changed each task and for which agent: one row per state change, keyed by the task version
// the change wrote (so a change is recorded once, even if its transaction is retried).
const taskHistory: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('task_history')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('from_state', 'text')
      .addColumn('to_state', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('on_behalf_of', 'text')
      .addColumn('message', 'text')
      .addPrimaryKeyConstraint('task_history_pk', ['task_id', 'version'])
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('task_history').execute();
  },
};

export const migrations: Record<string, Migration> = {
  '0001_orchestration': initial,
  '0002_claim_and_agent_page_indexes': claimAndAgentPageIndexes,
  '0003_task_history': taskHistory,
  // The events of every change, written in its transaction (runtime/outbox.ts).
  '0004_outbox': outboxMigration(),
  // Idempotency-Key of the create mutations, stored with the change (runtime/idempotency.ts).
  '0005_idempotency': idempotencyMigration(),
  // The trace context of each event's write, so relayed events keep their trace.
  '0006_outbox_trace': outboxTraceMigration(),
};
