// SQL about workflow definitions, runs and step runs. Writes run inside a Scope (a transaction).
import type { Cursor } from '../../../runtime/pagination.ts';
import { iso, workflowRunStatusChanged, type StepRunStatus, type WorkflowDefinitionSpec, type WorkflowRunStatus } from '../domain.ts';
import { decodeDefinition, decodeRun, decodeStepRun, encodeJson, type StepRunRow, type WorkflowDefinitionRow, type WorkflowRunRow } from './rows.ts';
import { afterCursor, type Reader, type Scope } from './scope.ts';

export interface WorkflowRunFilter {
  definitionId?: string | null;
  status?: WorkflowRunStatus | null;
}

/** Inserts the definition as the next version of its name in the tenant. */
export async function insertDefinition(s: Scope, id: string, spec: WorkflowDefinitionSpec): Promise<WorkflowDefinitionRow> {
  const latest = await s.trx
    .selectFrom('workflow_definitions')
    .select((eb) => eb.fn.max('version').as('v'))
    .where('tenant_id', '=', s.tenantId)
    .where('name', '=', spec.name)
    .executeTakeFirst();
  const row = {
    id,
    tenant_id: s.tenantId,
    name: spec.name,
    version: Number(latest?.v ?? 0) + 1,
    description: spec.description,
    steps: JSON.stringify(spec.steps),
    created_at: iso(s.now),
  };
  // Two creations racing for the same version: the unique (tenant_id, name, version) rejects
  // the second, and the caller retries it with a fresh read.
  await s.trx.insertInto('workflow_definitions').values(row).execute();
  return decodeDefinition(row);
}

export async function findDefinition(db: Reader, tenantId: string, id: string): Promise<WorkflowDefinitionRow | null> {
  const row = await db.selectFrom('workflow_definitions').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
  return row ? decodeDefinition(row) : null;
}

export async function definitionsByIds(db: Reader, tenantId: string, ids: readonly string[]): Promise<WorkflowDefinitionRow[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('workflow_definitions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...ids])
    .execute();
  return rows.map(decodeDefinition);
}

export async function listDefinitions(
  db: Reader,
  tenantId: string,
  name: string | null,
  page: { limit: number; after: Cursor | null },
): Promise<{ rows: WorkflowDefinitionRow[]; totalCount: number }> {
  let q = db.selectFrom('workflow_definitions').where('tenant_id', '=', tenantId);
  if (name !== null) q = q.where('name', '=', name);
  const rows = await q
    .selectAll()
    .$if(page.after !== null, (p) => p.where(afterCursor(page.after as Cursor)))
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .execute();
  const count = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { rows: rows.map(decodeDefinition), totalCount: Number(count.n) };
}

export async function insertRun(s: Scope, run: { id: string; definitionId: string; input: unknown }, stepIds: readonly string[]): Promise<WorkflowRunRow> {
  const at = iso(s.now);
  const row = {
    id: run.id,
    tenant_id: s.tenantId,
    definition_id: run.definitionId,
    status: 'RUNNING' as const,
    input: encodeJson(run.input),
    created_at: at,
    updated_at: at,
    finished_at: null,
    version: 1,
  };
  await s.trx.insertInto('workflow_runs').values(row).execute();
  await s.trx
    .insertInto('workflow_step_runs')
    .values(
      stepIds.map((stepId, position) => ({ tenant_id: s.tenantId, run_id: run.id, step_id: stepId, position, status: 'PENDING' as const, task_id: null })),
    )
    .execute();
  s.emit(workflowRunStatusChanged({ id: run.id, tenantId: s.tenantId }, null, 'RUNNING', s.now));
  return decodeRun(row);
}

export async function findRun(db: Reader, tenantId: string, id: string): Promise<WorkflowRunRow | null> {
  const row = await db.selectFrom('workflow_runs').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
  return row ? decodeRun(row) : null;
}

/**
 * Reads the run and, on PostgreSQL, locks it. Every change to a run's steps takes this lock
 * first, so two steps finishing at once see each other's outcome and release a join step once.
 */
export async function lockRun(s: Scope, id: string): Promise<WorkflowRunRow | null> {
  const row = await s.trx
    .selectFrom('workflow_runs')
    .selectAll()
    .where('tenant_id', '=', s.tenantId)
    .where('id', '=', id)
    .$if(s.dialect === 'postgres', (q) => q.forUpdate())
    .executeTakeFirst();
  return row ? decodeRun(row) : null;
}

export async function setRunStatus(s: Scope, run: WorkflowRunRow, status: WorkflowRunStatus): Promise<WorkflowRunRow> {
  const at = iso(s.now);
  const finishedAt = status === 'RUNNING' ? null : at;
  await s.trx
    .updateTable('workflow_runs')
    .set({ status, updated_at: at, finished_at: finishedAt, version: run.version + 1 })
    .where('tenant_id', '=', s.tenantId)
    .where('id', '=', run.id)
    .execute();
  s.emit(workflowRunStatusChanged(run, run.status, status, s.now));
  return { ...run, status, updatedAt: at, finishedAt, version: run.version + 1 };
}

export async function runsByIds(db: Reader, tenantId: string, ids: readonly string[]): Promise<WorkflowRunRow[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('workflow_runs')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...ids])
    .execute();
  return rows.map(decodeRun);
}

export async function listRuns(
  db: Reader,
  tenantId: string,
  filter: WorkflowRunFilter,
  page: { limit: number; after: Cursor | null },
): Promise<{ rows: WorkflowRunRow[]; totalCount: number }> {
  let q = db.selectFrom('workflow_runs').where('tenant_id', '=', tenantId);
  if (filter.definitionId) q = q.where('definition_id', '=', filter.definitionId);
  if (filter.status) q = q.where('status', '=', filter.status);
  const rows = await q
    .selectAll()
    .$if(page.after !== null, (p) => p.where(afterCursor(page.after as Cursor)))
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .execute();
  const count = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { rows: rows.map(decodeRun), totalCount: Number(count.n) };
}

export async function stepRunsOf(s: Scope, runId: string): Promise<StepRunRow[]> {
  const rows = await s.trx
    .selectFrom('workflow_step_runs')
    .selectAll()
    .where('tenant_id', '=', s.tenantId)
    .where('run_id', '=', runId)
    .orderBy('position', 'asc')
    .execute();
  return rows.map(decodeStepRun);
}

export async function stepRunsByRunIds(db: Reader, tenantId: string, runIds: readonly string[]): Promise<StepRunRow[]> {
  if (runIds.length === 0) return [];
  const rows = await db
    .selectFrom('workflow_step_runs')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('run_id', 'in', [...runIds])
    .orderBy('run_id')
    .orderBy('position', 'asc')
    .execute();
  return rows.map(decodeStepRun);
}

export async function setStepStatus(s: Scope, runId: string, stepIds: readonly string[], status: StepRunStatus, taskId?: string): Promise<void> {
  if (stepIds.length === 0) return;
  await s.trx
    .updateTable('workflow_step_runs')
    .set(taskId === undefined ? { status } : { status, task_id: taskId })
    .where('tenant_id', '=', s.tenantId)
    .where('run_id', '=', runId)
    .where('step_id', 'in', [...stepIds])
    .execute();
}
