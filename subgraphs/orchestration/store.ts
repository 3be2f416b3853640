// The orchestration store: every read and write of tasks and workflows, tenant-scoped, the same
// code on SQLite and PostgreSQL. Each write is one transaction (runtime/unit-of-work.ts), so its
// events are published only after it committed.
import type { Database } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { Idempotency, replayById, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction, type EventSink } from '../../runtime/unit-of-work.ts';
import * as domain from './domain.ts';
import {
  SYSTEM_ACTORS,
  type Actor,
  type AgentActor,
  type HistoryNote,
  type Task,
  type TaskFailure,
  type TaskHistoryEntry,
  type TaskSpec,
  type TaskState,
  type WorkflowDefinitionSpec,
} from './domain.ts';
import type { StepRunRow, TaskRow, WorkflowDefinitionRow, WorkflowRunRow } from './store/rows.ts';
import { cancelRun, settleTask, startRun } from './store/run-driver.ts';
import type { Scope } from './store/scope.ts';
import type { OrchestrationDB } from './store/tables.ts';
import * as tasks from './store/task-queries.ts';
import * as workflows from './store/workflow-queries.ts';

export type { OrchestrationDB } from './store/tables.ts';
export type { AgentRef, StepRunRow, TaskRow, WorkflowDefinitionRow, WorkflowRunRow } from './store/rows.ts';
export type { TaskFilter } from './store/task-queries.ts';
export type { WorkflowRunFilter } from './store/workflow-queries.ts';

export interface Page {
  first: number;
  limit: number;
  after: Cursor | null;
}

export interface SweepResult {
  /** Attempts that expired and wait for their retry. */
  requeued: number;
  /** Attempts that expired with no retry left. */
  failed: number;
}

export interface OrchestrationStoreOptions {
  database: Database<OrchestrationDB>;
  /** Where the events of each transaction go: the subgraph's outbox (or, in some tests, a bus). */
  bus: EventSink;
  logger: Logger;
  /** Epoch milliseconds; tests drive time through it instead of sleeping. */
  clock?: () => number;
  /** How many expired attempts the sweeper reads per query. */
  sweepBatchSize?: number;
  /** Idempotency-Key handling of the create mutations (runtime/idempotency.ts); a default one when left out. */
  idempotency?: Idempotency;
}

/** PostgreSQL aborts one side of a deadlock or serialization conflict; running it again succeeds. */
const RETRYABLE_PG_CODES = new Set(['40P01', '40001']);
const UNIQUE_VIOLATION = new Set(['23505', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const errorCode = (err: unknown): unknown => (typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined);

export class OrchestrationStore {
  private readonly database: Database<OrchestrationDB>;
  private readonly bus: EventSink;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly sweepBatchSize: number;
  private readonly idempotency: Idempotency;

  constructor(opts: OrchestrationStoreOptions) {
    this.database = opts.database;
    this.bus = opts.bus;
    this.logger = opts.logger;
    this.clock = opts.clock ?? Date.now;
    this.sweepBatchSize = opts.sweepBatchSize ?? 100;
    this.idempotency = opts.idempotency ?? new Idempotency({ ttlSeconds: 86_400 });
  }

  private get db() {
    return this.database.db;
  }

  private async transaction<T>(tenantId: string, actor: Actor, fn: (s: Scope) => Promise<T>, now: number = this.clock()): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
          fn({ trx, dialect: this.database.dialect, tenantId, now, emit, actor }),
        );
      } catch (err) {
        if (attempt >= 3 || !RETRYABLE_PG_CODES.has(String(errorCode(err)))) throw err;
        this.logger.warn({ err, attempt }, 'transaction aborted by the database; retrying');
      }
    }
  }

  // --- Tasks -----------------------------------------------------------------------------------

  async submitTask(tenantId: string, actor: Actor, spec: TaskSpec, request?: IdempotentRequest): Promise<TaskRow> {
    return this.idempotency.run(request, (once) =>
      this.transaction(tenantId, actor, (s) =>
        once(
          s.trx,
          s.now,
          async () => {
            const task = domain.newTask(spec, { id: newId(), tenantId }, s.now);
            await tasks.insertTask(s, task);
            return task;
          },
          replayById((id) => tasks.findTask(s.trx, tenantId, id)),
        ),
      ),
    );
  }

  getTask(tenantId: string, id: string): Promise<TaskRow | null> {
    return tasks.findTask(this.db, tenantId, id);
  }

  tasksByIds(tenantId: string, ids: readonly string[]): Promise<TaskRow[]> {
    return tasks.tasksByIds(this.db, tenantId, ids);
  }

  tasksByRunIds(tenantId: string, runIds: readonly string[]): Promise<TaskRow[]> {
    return tasks.tasksByRunIds(this.db, tenantId, runIds);
  }

  activeTaskCounts(tenantId: string, agentIds: readonly string[]): Promise<Map<string, number>> {
    return tasks.activeTaskCounts(this.db, tenantId, agentIds);
  }

  async listTasks(tenantId: string, filter: tasks.TaskFilter, page: Page): Promise<Connection<TaskRow>> {
    const { rows, totalCount } = await tasks.listTasks(this.db, tenantId, filter, page);
    return toConnection(rows, page, totalCount);
  }

  /**
   * One page of tasks per agent, the same connection listTasks gives for { agentId, state }, for
   * all the agents in two statements (a windowed page query and a grouped count) instead of two
   * per agent. Agents without tasks get an empty connection.
   */
  async agentTaskConnections(tenantId: string, agentIds: readonly string[], state: TaskState | null, page: Page): Promise<Connection<TaskRow>[]> {
    const [pages, counts] = await Promise.all([
      tasks.firstTasksOfAgents(this.db, tenantId, agentIds, state, page),
      tasks.taskCountsOfAgents(this.db, tenantId, agentIds, state === null ? null : [state]),
    ]);
    return agentIds.map((id) => toConnection(pages.get(id) ?? [], page, counts.get(id) ?? 0));
  }

  /** The first `limit` state changes of each task, oldest first; tasks without any get none. */
  taskHistory(tenantId: string, taskIds: readonly string[], limit: number): Promise<Map<string, TaskHistoryEntry[]>> {
    return tasks.historyOfTasks(this.db, tenantId, taskIds, limit);
  }

  /**
   * Hands one claimable task to the actor's agent, or null: one whose required tags are all in
   * skillTags (the agent's registered tags, as the caller established them). The candidate's row
   * is locked (PostgreSQL) or the whole transaction runs alone (SQLite), and the UPDATE is
   * guarded on state SUBMITTED and checked, so a task never goes to two claimers.
   */
  async claimTask(tenantId: string, actor: AgentActor, skillTags: readonly string[], leaseSeconds: number): Promise<TaskRow | null> {
    const { agentId } = actor;
    return this.transaction(tenantId, actor, async (s) => {
      // The guard can only miss if the candidate was not locked (a bug or another dialect's
      // semantics); then the next candidate is as good, so look again instead of failing.
      for (let tries = 0; tries < 5; tries++) {
        const candidate = await tasks.claimCandidate(s, skillTags);
        if (!candidate) return null;
        const claimed = domain.claim(candidate, agentId, leaseSeconds, s.now);
        if (await tasks.writeIfUnchanged(s, candidate, claimed)) return claimed;
        this.logger.warn({ taskId: candidate.id }, 'claim lost its candidate to a concurrent claimer; trying the next one');
      }
      return null;
    });
  }

  async reportProgress(
    tenantId: string,
    taskId: string,
    actor: AgentActor,
    args: { percent: number; message: string | null; leaseSeconds: number },
  ): Promise<TaskRow> {
    return this.changeTask(
      tenantId,
      actor,
      taskId,
      (task, s) => domain.reportProgress(task, { ...args, agentId: actor.agentId }, s.now),
      (next, s) => s.emit(domain.taskProgressReported(next)),
    );
  }

  requestInput(tenantId: string, taskId: string, actor: AgentActor, args: { message: string }): Promise<TaskRow> {
    return this.changeTask(tenantId, actor, taskId, (task, s) => domain.requestInput(task, { ...args, agentId: actor.agentId }, s.now));
  }

  provideInput(tenantId: string, taskId: string, actor: Actor, args: { input: unknown; leaseSeconds: number }): Promise<TaskRow> {
    return this.changeTask(tenantId, actor, taskId, (task, s) => domain.provideInput(task, args, s.now));
  }

  completeTask(tenantId: string, taskId: string, actor: AgentActor, args: { result: unknown }): Promise<TaskRow> {
    return this.changeTask(tenantId, actor, taskId, (task, s) => domain.complete(task, { ...args, agentId: actor.agentId }, s.now));
  }

  failTask(tenantId: string, taskId: string, actor: AgentActor, args: { error: TaskFailure; retryable: boolean }): Promise<TaskRow> {
    return this.changeTask(tenantId, actor, taskId, (task, s) => domain.fail(task, { ...args, agentId: actor.agentId }, s.now));
  }

  cancelTask(tenantId: string, taskId: string, actor: Actor): Promise<TaskRow> {
    return this.changeTask(tenantId, actor, taskId, (task, s) => domain.cancel(task, s.now));
  }

  /**
   * Releases every task this agent holds back to SUBMITTED for another agent (domain.release: not
   * a failed attempt), each in its own transaction, re-checked under lock: running it again, or on
   * several replicas for the same event, changes nothing more. Returns how many this call released.
   */
  async releaseAgentTasks(tenantId: string, agentId: string, reason = `agent "${agentId}" was retired`): Promise<number> {
    let released = 0;
    for (const id of await tasks.heldTaskIds(this.db, tenantId, agentId)) {
      const next = await this.transaction(tenantId, SYSTEM_ACTORS.agentRetirement, (s) =>
        this.applyToTask(
          s,
          id,
          (task) => domain.release(task, agentId, s.now),
          () => ({ kind: 'RELEASED', message: reason }),
        ),
      );
      if (next) released += 1;
    }
    return released;
  }

  /**
   * One task command in one transaction. A workflow task's run is locked before the task (the
   * order every writer uses, so two writers never wait on each other in a cycle), and a task
   * that ends moves its run forward in the same transaction.
   */
  private async changeTask(
    tenantId: string,
    actor: Actor,
    taskId: string,
    change: (task: Task, s: Scope) => Task,
    afterSave?: (next: Task, s: Scope) => void,
  ): Promise<TaskRow> {
    return this.transaction(tenantId, actor, async (s) => {
      const outcome = await this.applyToTask(s, taskId, (task) => change(task, s));
      if (!outcome) throw notFound('Task', taskId);
      afterSave?.(outcome, s);
      return outcome;
    });
  }

  /** Null when the task does not exist or change returns null (nothing to do). */
  private async applyToTask(s: Scope, taskId: string, change: (task: Task) => Task | null, noteOf?: (task: Task) => HistoryNote): Promise<TaskRow | null> {
    const peek = await tasks.findTask(s.trx, s.tenantId, taskId);
    if (!peek) return null;
    const run = peek.workflowRunId ? await workflows.lockRun(s, peek.workflowRunId) : null;
    const task = await tasks.lockTask(s, taskId);
    if (!task) return null;
    const next = change(task);
    if (!next) return null;
    await tasks.saveTask(s, task, next, noteOf?.(task));
    if (run && domain.isTerminal(next.state)) await settleTask(s, run, next);
    return next;
  }

  // --- Leases and timeouts ---------------------------------------------------------------------

  /**
   * Ends every attempt whose lease or deadline passed by `now`, in every tenant: each becomes a
   * failed attempt (retried with backoff, or FAILED with its workflow run moved on). Reads the
   * expired attempts in batches; each task changes in its own short transaction, re-checked
   * under lock, so a progress report that just renewed the lease wins.
   */
  async sweep(now: number = this.clock()): Promise<SweepResult> {
    const result: SweepResult = { requeued: 0, failed: 0 };
    const seen = new Set<string>();
    for (;;) {
      const due = (await tasks.expiredTasks(this.db, now, this.sweepBatchSize)).filter((t) => !seen.has(t.id));
      for (const { id, tenantId } of due) {
        seen.add(id);
        const next = await this.transaction(
          tenantId,
          SYSTEM_ACTORS.leaseSweeper,
          (s) =>
            this.applyToTask(
              s,
              id,
              (task) => domain.expire(task, s.now),
              (task) => domain.expiryNote(task, s.now),
            ),
          now,
        );
        if (next?.state === 'SUBMITTED') result.requeued += 1;
        if (next?.state === 'FAILED') result.failed += 1;
      }
      if (due.length < this.sweepBatchSize) return result;
    }
  }

  // --- Workflows -------------------------------------------------------------------------------

  async createDefinition(tenantId: string, spec: WorkflowDefinitionSpec, request?: IdempotentRequest): Promise<WorkflowDefinitionRow> {
    return this.idempotency.run(request, async (once) => {
      for (let attempt = 1; ; attempt++) {
        try {
          // A definition has no history; its writer is not recorded.
          return await this.transaction(tenantId, SYSTEM_ACTORS.workflowEngine, (s) =>
            once(
              s.trx,
              s.now,
              () => workflows.insertDefinition(s, newId(), spec),
              replayById((id) => workflows.findDefinition(s.trx, tenantId, id)),
            ),
          );
        } catch (err) {
          if (!UNIQUE_VIOLATION.has(String(errorCode(err)))) throw err;
          if (attempt >= 3) throw conflict(`workflow "${spec.name}" is being changed concurrently; retry`, { name: spec.name });
        }
      }
    });
  }

  getDefinition(tenantId: string, id: string): Promise<WorkflowDefinitionRow | null> {
    return workflows.findDefinition(this.db, tenantId, id);
  }

  definitionsByIds(tenantId: string, ids: readonly string[]): Promise<WorkflowDefinitionRow[]> {
    return workflows.definitionsByIds(this.db, tenantId, ids);
  }

  async listDefinitions(tenantId: string, name: string | null, page: Page): Promise<Connection<WorkflowDefinitionRow>> {
    const { rows, totalCount } = await workflows.listDefinitions(this.db, tenantId, name, page);
    return toConnection(rows, page, totalCount);
  }

  async startRun(tenantId: string, actor: Actor, definitionId: string, input: unknown, request?: IdempotentRequest): Promise<WorkflowRunRow> {
    return this.idempotency.run(request, (once) =>
      this.transaction(tenantId, actor, (s) =>
        once(
          s.trx,
          s.now,
          async () => {
            const definition = await workflows.findDefinition(s.trx, tenantId, definitionId);
            if (!definition) throw notFound('WorkflowDefinition', definitionId);
            return startRun(s, definition, input);
          },
          replayById((id) => workflows.findRun(s.trx, tenantId, id)),
        ),
      ),
    );
  }

  getRun(tenantId: string, id: string): Promise<WorkflowRunRow | null> {
    return workflows.findRun(this.db, tenantId, id);
  }

  runsByIds(tenantId: string, ids: readonly string[]): Promise<WorkflowRunRow[]> {
    return workflows.runsByIds(this.db, tenantId, ids);
  }

  stepRunsByRunIds(tenantId: string, runIds: readonly string[]): Promise<StepRunRow[]> {
    return workflows.stepRunsByRunIds(this.db, tenantId, runIds);
  }

  async listRuns(tenantId: string, filter: workflows.WorkflowRunFilter, page: Page): Promise<Connection<WorkflowRunRow>> {
    const { rows, totalCount } = await workflows.listRuns(this.db, tenantId, filter, page);
    return toConnection(rows, page, totalCount);
  }

  /** Cancels a RUNNING run and its open tasks; a CONFLICT when the run already finished. */
  async cancelRun(tenantId: string, actor: Actor, runId: string): Promise<WorkflowRunRow> {
    return this.transaction(tenantId, actor, async (s) => {
      const run = await workflows.lockRun(s, runId);
      if (!run) throw notFound('WorkflowRun', runId);
      if (domain.isRunFinished(run.status)) {
        throw conflict(`Workflow run "${runId}" cannot go from ${run.status} to CANCELED`, { from: run.status, to: 'CANCELED' });
      }
      return cancelRun(s, run);
    });
  }
}
