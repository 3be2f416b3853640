// Moves workflow runs forward inside the transaction that changed one of their tasks, so a run
// and its tasks never disagree: a completion releases the next steps, a final failure fails the
// run and skips what is pending, a cancellation cancels the open tasks.
import { newId } from '../../../runtime/ids.ts';
import { advanceRun, cancel, isTerminal, newTask, stepStatusOf, stepTaskInput, SYSTEM_ACTORS, type WorkflowStep } from '../domain.ts';
import type { TaskRow, WorkflowDefinitionRow, WorkflowRunRow } from './rows.ts';
import type { Scope } from './scope.ts';
import { insertTask, lockTask, saveTask, taskResults } from './task-queries.ts';
import { findDefinition, insertRun, setRunStatus, setStepStatus, stepRunsOf } from './workflow-queries.ts';

export async function startRun(s: Scope, definition: WorkflowDefinitionRow, input: unknown): Promise<WorkflowRunRow> {
  const run = await insertRun(
    s,
    { id: newId(), definitionId: definition.id, input },
    definition.steps.map((step) => step.id),
  );
  return advance(s, run, definition.steps);
}

/** The run is locked by the caller; the task has just reached a terminal state. */
export async function settleTask(s: Scope, run: WorkflowRunRow, task: TaskRow): Promise<WorkflowRunRow> {
  const status = stepStatusOf(task.state);
  if (status === null || task.workflowStepId === null) return run;
  await setStepStatus(s, run.id, [task.workflowStepId], status);
  return advance(s, run, await stepsOf(s, run));
}

/** The run is locked by the caller and RUNNING. */
export async function cancelRun(s: Scope, run: WorkflowRunRow): Promise<WorkflowRunRow> {
  return advance(s, run, await stepsOf(s, run), { cancel: true });
}

async function stepsOf(s: Scope, run: WorkflowRunRow): Promise<WorkflowStep[]> {
  const definition = await findDefinition(s.trx, s.tenantId, run.definitionId);
  if (!definition) throw new Error(`workflow run ${run.id} names a missing definition ${run.definitionId}`);
  return definition.steps;
}

async function advance(caller: Scope, run: WorkflowRunRow, steps: readonly WorkflowStep[], opts: { cancel?: boolean } = {}): Promise<WorkflowRunRow> {
  // A finished run changes no more: tasks still running in it (after a failure) end on their own.
  if (run.status !== 'RUNNING') return run;
  // What the engine does to the run's tasks is its own doing, whoever's change set it off.
  const s: Scope = { ...caller, actor: SYSTEM_ACTORS.workflowEngine };
  const stepRuns = await stepRunsOf(s, run.id);
  const plan = advanceRun(steps, new Map(stepRuns.map((r) => [r.stepId, r.status])), opts);
  const taskOfStep = new Map(stepRuns.map((r) => [r.stepId, r.taskId]));

  if (plan.start.length > 0) {
    const started = steps.filter((step) => plan.start.includes(step.id));
    const upstreamTaskIds = started.flatMap((step) => step.dependsOn.map((dep) => taskOfStep.get(dep) ?? null)).filter((id) => id !== null);
    const results = await taskResults(s, [...new Set(upstreamTaskIds)]);
    for (const step of started) {
      const upstream = new Map(step.dependsOn.map((dep) => [dep, results.get(taskOfStep.get(dep) ?? '') ?? null]));
      const task = newTask(
        {
          title: step.title,
          description: step.description,
          input: stepTaskInput(step, run.input, upstream),
          requiredSkillTags: step.requiredSkillTags,
          priority: step.priority,
          retryPolicy: step.retryPolicy,
          timeoutSeconds: step.timeoutSeconds,
        },
        { id: newId(), tenantId: s.tenantId, workflowRunId: run.id, workflowStepId: step.id },
        s.now,
      );
      await insertTask(s, task);
      await setStepStatus(s, run.id, [step.id], 'RUNNING', task.id);
    }
  }
  await setStepStatus(s, run.id, plan.skip, 'SKIPPED');
  for (const stepId of plan.cancel) {
    const taskId = taskOfStep.get(stepId);
    const task = taskId ? await lockTask(s, taskId) : null;
    if (task && !isTerminal(task.state))
      await saveTask(s, task, cancel(task, s.now), { message: opts.cancel ? `workflow run ${run.id} canceled` : `workflow run ${run.id} failed` });
  }
  await setStepStatus(s, run.id, plan.cancel, 'CANCELED');
  return plan.status === run.status ? run : setRunStatus(s, run, plan.status);
}
