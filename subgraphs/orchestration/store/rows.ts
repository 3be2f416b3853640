// What the store hands out (decoded, camelCase, ISO strings) and the mapping to and from columns.
// These are the types codegen maps the GraphQL objects to.
import type { StepRunStatus, Task, TaskFailure, WorkflowRunStatus, WorkflowStep } from '../domain.ts';
import type { TasksTable, WorkflowDefinitionsTable, WorkflowRunsTable, WorkflowStepRunsTable } from './tables.ts';

export type TaskRow = Task;

/** An agent as orchestration knows it: the agents subgraph resolves the rest through the gateway. */
export interface AgentRef {
  id: string;
}

export interface WorkflowDefinitionRow {
  id: string;
  tenantId: string;
  name: string;
  version: number;
  description: string | null;
  steps: WorkflowStep[];
  createdAt: string;
}

export interface WorkflowRunRow {
  id: string;
  tenantId: string;
  definitionId: string;
  status: WorkflowRunStatus;
  input: unknown;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  version: number;
}

export interface StepRunRow {
  runId: string;
  stepId: string;
  position: number;
  status: StepRunStatus;
  taskId: string | null;
}

export function encodeJson(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function decodeJson(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}

export function decodeTask(r: TasksTable): TaskRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    title: r.title,
    description: r.description,
    input: decodeJson(r.input),
    requiredSkillTags: JSON.parse(r.required_skill_tags) as string[],
    priority: r.priority,
    state: r.state,
    attempts: r.attempts,
    retryPolicy: {
      initialIntervalSeconds: r.retry_initial_interval_seconds,
      backoffCoefficient: r.retry_backoff_coefficient,
      maximumIntervalSeconds: r.retry_maximum_interval_seconds,
      maximumAttempts: r.retry_maximum_attempts,
    },
    timeoutSeconds: r.timeout_seconds,
    progress:
      r.progress_percent === null || r.progress_updated_at === null
        ? null
        : { percent: r.progress_percent, message: r.progress_message, updatedAt: r.progress_updated_at },
    result: decodeJson(r.result),
    error: decodeJson(r.error) as TaskFailure | null,
    agentId: r.agent_id,
    leaseExpiresAt: r.lease_expires_at,
    attemptStartedAt: r.attempt_started_at,
    attemptDeadlineAt: r.attempt_deadline_at,
    inputRequestedAt: r.input_requested_at,
    availableAt: r.available_at,
    workflowRunId: r.workflow_run_id,
    workflowStepId: r.workflow_step_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    version: r.version,
  };
}

export function encodeTask(t: TaskRow): TasksTable {
  return {
    id: t.id,
    tenant_id: t.tenantId,
    title: t.title,
    description: t.description,
    input: encodeJson(t.input),
    required_skill_tags: JSON.stringify(t.requiredSkillTags),
    priority: t.priority,
    state: t.state,
    attempts: t.attempts,
    retry_initial_interval_seconds: t.retryPolicy.initialIntervalSeconds,
    retry_backoff_coefficient: t.retryPolicy.backoffCoefficient,
    retry_maximum_interval_seconds: t.retryPolicy.maximumIntervalSeconds,
    retry_maximum_attempts: t.retryPolicy.maximumAttempts,
    timeout_seconds: t.timeoutSeconds,
    progress_percent: t.progress?.percent ?? null,
    progress_message: t.progress?.message ?? null,
    progress_updated_at: t.progress?.updatedAt ?? null,
    result: encodeJson(t.result),
    error: encodeJson(t.error),
    agent_id: t.agentId,
    lease_expires_at: t.leaseExpiresAt,
    attempt_started_at: t.attemptStartedAt,
    attempt_deadline_at: t.attemptDeadlineAt,
    input_requested_at: t.inputRequestedAt,
    available_at: t.availableAt,
    workflow_run_id: t.workflowRunId,
    workflow_step_id: t.workflowStepId,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
    started_at: t.startedAt,
    finished_at: t.finishedAt,
    version: t.version,
  };
}

export function decodeDefinition(r: WorkflowDefinitionsTable): WorkflowDefinitionRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    version: r.version,
    description: r.description,
    steps: JSON.parse(r.steps) as WorkflowStep[],
    createdAt: r.created_at,
  };
}

export function decodeRun(r: WorkflowRunsTable): WorkflowRunRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    definitionId: r.definition_id,
    status: r.status,
    input: decodeJson(r.input),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
    version: r.version,
  };
}

export function decodeStepRun(r: WorkflowStepRunsTable): StepRunRow {
  return { runId: r.run_id, stepId: r.step_id, position: r.position, status: r.status, taskId: r.task_id };
}
