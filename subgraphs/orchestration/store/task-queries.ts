// SQL about tasks. Writes run inside a Scope (a transaction); reads take any connection.
import { conflict } from '../../../runtime/errors.ts';
import type { Cursor } from '../../../runtime/pagination.ts';
import { ACTIVE_STATES, historyEntry, iso, taskStateChanged, type HistoryNote, type Task, type TaskHistoryEntry, type TaskState } from '../domain.ts';
import { decodeTask, encodeTask, type TaskRow } from './rows.ts';
import { affected, afterCursor, type Reader, type Scope } from './scope.ts';

export interface TaskFilter {
  state?: TaskState | null;
  agentId?: string | null;
  skillTag?: string | null;
  workflowRunId?: string | null;
}

export async function insertTask(s: Scope, task: TaskRow): Promise<void> {
  await s.trx.insertInto('tasks').values(encodeTask(task)).execute();
  if (task.requiredSkillTags.length > 0) {
    await s.trx
      .insertInto('task_required_tags')
      .values(task.requiredSkillTags.map((tag) => ({ tenant_id: task.tenantId, task_id: task.id, tag })))
      .execute();
  }
  await recordHistory(s, null, task);
  s.emit(taskStateChanged(null, task));
}

/** One history row for a state change, as the scope's actor made it. */
async function recordHistory(s: Scope, before: Task | null, after: Task, note?: HistoryNote): Promise<void> {
  const entry = historyEntry(before, after, s.actor, note);
  await s.trx
    .insertInto('task_history')
    .values({
      tenant_id: s.tenantId,
      task_id: after.id,
      version: after.version,
      at: entry.at,
      kind: entry.kind,
      from_state: entry.from,
      to_state: entry.to,
      actor: entry.actor,
      on_behalf_of: entry.onBehalfOf,
      message: entry.message,
    })
    .execute();
}

/** The first `limit` history entries of each task, oldest first, in one statement. */
export async function historyOfTasks(db: Reader, tenantId: string, taskIds: readonly string[], limit: number): Promise<Map<string, TaskHistoryEntry[]>> {
  const byTask = new Map<string, TaskHistoryEntry[]>();
  if (taskIds.length === 0) return byTask;
  const rows = await db
    .selectFrom('task_history')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('task_id', 'in', [...taskIds])
    .orderBy('task_id')
    .orderBy('version')
    .execute();
  for (const r of rows) {
    const list = byTask.get(r.task_id) ?? [];
    if (list.length >= limit) continue;
    list.push({ at: r.at, kind: r.kind, from: r.from_state, to: r.to_state, actor: r.actor, onBehalfOf: r.on_behalf_of, message: r.message });
    byTask.set(r.task_id, list);
  }
  return byTask;
}

export async function findTask(db: Reader, tenantId: string, id: string): Promise<TaskRow | null> {
  const row = await db.selectFrom('tasks').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
  return row ? decodeTask(row) : null;
}

/** Reads the task and, on PostgreSQL, locks its row until the transaction ends. */
export async function lockTask(s: Scope, id: string): Promise<TaskRow | null> {
  const row = await s.trx
    .selectFrom('tasks')
    .selectAll()
    .where('tenant_id', '=', s.tenantId)
    .where('id', '=', id)
    .$if(s.dialect === 'postgres', (q) => q.forUpdate())
    .executeTakeFirst();
  return row ? decodeTask(row) : null;
}

/**
 * Writes the task's next version. The guard on the version read (and, for claims, on the state)
 * makes a lost update impossible even if a caller forgot to lock: the write then fails instead.
 */
export async function saveTask(s: Scope, before: TaskRow, after: TaskRow, note?: HistoryNote): Promise<void> {
  if (!(await writeIfUnchanged(s, before, after, note))) {
    throw conflict(`Task "${before.id}" was changed concurrently; read it again and retry`, { taskId: before.id });
  }
}

/** Like saveTask, but false instead of an error when another writer got there first. */
export async function writeIfUnchanged(s: Scope, before: TaskRow, after: TaskRow, note?: HistoryNote): Promise<boolean> {
  const { id: _id, tenant_id: _tenant, created_at: _created, ...changes } = encodeTask(after);
  const result = await s.trx
    .updateTable('tasks')
    .set(changes)
    .where('tenant_id', '=', s.tenantId)
    .where('id', '=', before.id)
    .where('version', '=', before.version)
    .where('state', '=', before.state)
    .executeTakeFirst();
  if (affected(result) !== 1) return false;
  if (after.state !== before.state) {
    await recordHistory(s, before, after, note);
    s.emit(taskStateChanged(before.state, after));
  }
  return true;
}

/**
 * The task this claimer should get: SUBMITTED, available now, every required tag offered,
 * highest priority then oldest. On PostgreSQL the row is locked and rows other claimers hold
 * are skipped, so concurrent claimers each lock a different task instead of queueing on one.
 *
 * Index-driven: the tenant's SUBMITTED tasks are read in claim order from tasks_claim_order and
 * the first one that passes the tag check is taken, so a claim reads the tasks ahead of its
 * result that it may not take (about a microsecond each), never sorts the backlog. The tag check
 * looks up the candidate's own tags by task id (the primary key): the tenant is already the
 * candidate's, and naming it there made SQLite scan every tag of the tenant for each candidate.
 */
export async function claimCandidate(s: Scope, skillTags: readonly string[]): Promise<TaskRow | null> {
  const row = await s.trx
    .selectFrom('tasks as t')
    .selectAll('t')
    .where('t.tenant_id', '=', s.tenantId)
    .where('t.state', '=', 'SUBMITTED')
    .where('t.available_at', '<=', iso(s.now))
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('task_required_tags as r')
            .select('r.tag')
            .whereRef('r.task_id', '=', 't.id')
            .$if(skillTags.length > 0, (q) => q.where('r.tag', 'not in', [...skillTags])),
        ),
      ),
    )
    .orderBy('t.priority', 'desc')
    .orderBy('t.created_at', 'asc')
    .orderBy('t.id', 'asc')
    .limit(1)
    .$if(s.dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .executeTakeFirst();
  return row ? decodeTask(row) : null;
}

export async function listTasks(
  db: Reader,
  tenantId: string,
  filter: TaskFilter,
  page: { limit: number; after: Cursor | null },
): Promise<{ rows: TaskRow[]; totalCount: number }> {
  let q = db.selectFrom('tasks').where('tenant_id', '=', tenantId);
  if (filter.state) q = q.where('state', '=', filter.state);
  if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
  if (filter.workflowRunId) q = q.where('workflow_run_id', '=', filter.workflowRunId);
  const tag = filter.skillTag;
  if (tag) {
    q = q.where((eb) =>
      eb.exists(
        eb
          .selectFrom('task_required_tags as r')
          .select('r.tag')
          .whereRef('r.task_id', '=', 'tasks.id')
          .where('r.tenant_id', '=', tenantId)
          .where('r.tag', '=', tag),
      ),
    );
  }
  const rows = await q
    .selectAll()
    .$if(page.after !== null, (p) => p.where(afterCursor(page.after as Cursor)))
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .execute();
  const count = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { rows: rows.map(decodeTask), totalCount: Number(count.n) };
}

/**
 * The first `limit` tasks of each agent in keyset order after the cursor, for any number of
 * agents in one statement: tasks are numbered per agent by a window function over the narrow
 * tasks_agent_recent index (no table row read, no sort), and only the rows within the limit are
 * then read whole. Numbering whole rows made SQLite sort every task of the agents with all its
 * columns, twice.
 */
export async function firstTasksOfAgents(
  db: Reader,
  tenantId: string,
  agentIds: readonly string[],
  state: TaskState | null,
  page: { limit: number; after: Cursor | null },
): Promise<Map<string, TaskRow[]>> {
  const pages = new Map<string, TaskRow[]>();
  if (agentIds.length === 0) return pages;
  const ranked = db
    .selectFrom('tasks')
    .select((eb) => [
      'id',
      eb.fn
        .agg<number>('row_number')
        .over((ob) => ob.partitionBy('agent_id').orderBy('created_at', 'desc').orderBy('id', 'desc'))
        .as('rn'),
    ])
    .where('tenant_id', '=', tenantId)
    .where('agent_id', 'in', [...agentIds])
    .$if(state !== null, (q) => q.where('state', '=', state as TaskState))
    .$if(page.after !== null, (q) => q.where(afterCursor(page.after as Cursor)));
  const rows = await db
    .selectFrom(ranked.as('ranked'))
    .innerJoin('tasks', 'tasks.id', 'ranked.id')
    .selectAll('tasks')
    .select('ranked.rn')
    .where('ranked.rn', '<=', page.limit)
    .execute();
  // Ordered here rather than by the database: sorting a few rows in memory beats a sort of whole rows.
  rows.sort((a, b) => Number(a.rn) - Number(b.rn));
  for (const row of rows) {
    if (row.agent_id === null) continue;
    const list = pages.get(row.agent_id) ?? [];
    list.push(decodeTask(row));
    pages.set(row.agent_id, list);
  }
  return pages;
}

/**
 * How many tasks each agent has (in one of these states, when given), for any number of agents
 * in one grouped statement. The cursor does not narrow it: totalCount is the whole list's, as in
 * listTasks.
 */
export async function taskCountsOfAgents(
  db: Reader,
  tenantId: string,
  agentIds: readonly string[],
  states: readonly TaskState[] | null,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (agentIds.length === 0) return counts;
  const rows = await db
    .selectFrom('tasks')
    .select((eb) => ['agent_id', eb.fn.countAll<number>().as('n')])
    .where('tenant_id', '=', tenantId)
    .where('agent_id', 'in', [...agentIds])
    .$if(states !== null, (q) => q.where('state', 'in', [...(states ?? [])]))
    .groupBy('agent_id')
    .execute();
  for (const r of rows) if (r.agent_id !== null) counts.set(r.agent_id, Number(r.n));
  return counts;
}

export async function tasksByIds(db: Reader, tenantId: string, ids: readonly string[]): Promise<TaskRow[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('tasks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...ids])
    .execute();
  return rows.map(decodeTask);
}

export async function tasksByRunIds(db: Reader, tenantId: string, runIds: readonly string[]): Promise<TaskRow[]> {
  if (runIds.length === 0) return [];
  const rows = await db
    .selectFrom('tasks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('workflow_run_id', 'in', [...runIds])
    .orderBy('created_at', 'asc')
    .orderBy('id', 'asc')
    .execute();
  return rows.map(decodeTask);
}

/** Active (held) tasks per agent, for any number of agents in one grouped statement. */
export function activeTaskCounts(db: Reader, tenantId: string, agentIds: readonly string[]): Promise<Map<string, number>> {
  return taskCountsOfAgents(db, tenantId, agentIds, ACTIVE_STATES);
}

/** Attempts whose lease or deadline has passed, in every tenant, oldest deadline first. */
export async function expiredTasks(db: Reader, now: number, limit: number): Promise<{ id: string; tenantId: string }[]> {
  const at = iso(now);
  const rows = await db
    .selectFrom('tasks')
    .select(['id', 'tenant_id'])
    .where('state', 'in', ['ASSIGNED', 'WORKING'])
    .where((eb) => eb.or([eb('lease_expires_at', '<=', at), eb('attempt_deadline_at', '<=', at)]))
    .orderBy('updated_at', 'asc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id }));
}

/** The tasks this agent holds (ASSIGNED, WORKING, INPUT_REQUIRED), in every state a retirement releases. */
export async function heldTaskIds(db: Reader, tenantId: string, agentId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('tasks')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('agent_id', '=', agentId)
    .where('state', 'in', [...ACTIVE_STATES])
    .execute();
  return rows.map((r) => r.id);
}

/** Results of the given tasks, for the upstream input of released workflow steps. */
export async function taskResults(s: Scope, ids: readonly string[]): Promise<Map<string, unknown>> {
  const results = new Map<string, unknown>();
  if (ids.length === 0) return results;
  const rows = await s.trx
    .selectFrom('tasks')
    .select(['id', 'result'])
    .where('tenant_id', '=', s.tenantId)
    .where('id', 'in', [...ids])
    .execute();
  for (const r of rows) results.set(r.id, r.result === null ? null : (JSON.parse(r.result) as unknown));
  return results;
}
