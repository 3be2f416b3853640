// The orchestration database as kysely sees it: one interface per table, columns as stored.
// JSON values are TEXT and timestamps ISO-8601 UTC TEXT on both dialects (see runtime/db.ts).
import type { StepRunStatus, TaskHistoryKind, TaskState, WorkflowRunStatus } from '../domain.ts';

export interface TasksTable {
  id: string;
  tenant_id: string;
  title: string;
  description: string | null;
  input: string | null;
  /** JSON array, for reading; task_required_tags holds the same tags for matching. */
  required_skill_tags: string;
  priority: number;
  state: TaskState;
  attempts: number;
  retry_initial_interval_seconds: number;
  retry_backoff_coefficient: number;
  retry_maximum_interval_seconds: number;
  retry_maximum_attempts: number;
  timeout_seconds: number;
  progress_percent: number | null;
  progress_message: string | null;
  progress_updated_at: string | null;
  result: string | null;
  error: string | null;
  agent_id: string | null;
  lease_expires_at: string | null;
  attempt_started_at: string | null;
  attempt_deadline_at: string | null;
  input_requested_at: string | null;
  available_at: string;
  workflow_run_id: string | null;
  workflow_step_id: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  version: number;
}

export interface TaskRequiredTagsTable {
  tenant_id: string;
  task_id: string;
  tag: string;
}

/** One state change of a task; (task_id, version) is the task version the change wrote. */
export interface TaskHistoryTable {
  tenant_id: string;
  task_id: string;
  version: number;
  at: string;
  kind: TaskHistoryKind;
  from_state: TaskState | null;
  to_state: TaskState;
  actor: string;
  on_behalf_of: string | null;
  message: string | null;
}

export interface WorkflowDefinitionsTable {
  id: string;
  tenant_id: string;
  name: string;
  version: number;
  description: string | null;
  /** JSON array of validated WorkflowStep. */
  steps: string;
  created_at: string;
}

export interface WorkflowRunsTable {
  id: string;
  tenant_id: string;
  definition_id: string;
  status: WorkflowRunStatus;
  input: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  version: number;
}

export interface WorkflowStepRunsTable {
  tenant_id: string;
  run_id: string;
  step_id: string;
  /** The step's index in its definition, so a run lists its steps in definition order. */
  position: number;
  status: StepRunStatus;
  task_id: string | null;
}

export interface OrchestrationDB {
  tasks: TasksTable;
  task_required_tags: TaskRequiredTagsTable;
  task_history: TaskHistoryTable;
  workflow_definitions: WorkflowDefinitionsTable;
  workflow_runs: WorkflowRunsTable;
  workflow_step_runs: WorkflowStepRunsTable;
}
