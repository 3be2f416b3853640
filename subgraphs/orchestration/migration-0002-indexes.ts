// Indexes for the two queries that read far more than they returned: claiming a task, and
// Agent.tasks (the tasks of many agents at once, for a federated join).
import type { Kysely, Migration } from 'kysely';

export const claimAndAgentPageIndexes: Migration = {
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
