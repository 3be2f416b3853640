// The orchestration rules, free of I/O: the task state machine (A2A task states plus ASSIGNED),
// Temporal's retry policy and backoff, leases and attempt timeouts, input validation, and the
// workflow DAG (Argo-style validation and step release). Time is always passed in as epoch
// milliseconds so every rule can be tested without a clock.
import type { NewDomainEvent } from '../../runtime/events.ts';
import { badInput, conflict, domainError } from '../../runtime/errors.ts';
import { intInRange, jsonValue, numberInRange, optionalText, stringList, text } from '../../runtime/validate.ts';

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

export type TaskState = 'SUBMITTED' | 'ASSIGNED' | 'WORKING' | 'INPUT_REQUIRED' | 'COMPLETED' | 'FAILED' | 'CANCELED';

export const TERMINAL_STATES: readonly TaskState[] = ['COMPLETED', 'FAILED', 'CANCELED'];
/** States in which an agent holds the task (what Agent.activeTaskCount counts). */
export const ACTIVE_STATES: readonly TaskState[] = ['ASSIGNED', 'WORKING', 'INPUT_REQUIRED'];
export const OPEN_STATES: readonly TaskState[] = ['SUBMITTED', ...ACTIVE_STATES];

export const isTerminal = (state: TaskState): boolean => TERMINAL_STATES.includes(state);

/** Every legal state change; a state not listed as a target of `from` is a CONFLICT. */
const TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  SUBMITTED: ['ASSIGNED', 'CANCELED'],
  // SUBMITTED again is a failed or expired attempt waiting for its retry.
  ASSIGNED: ['WORKING', 'COMPLETED', 'SUBMITTED', 'FAILED', 'CANCELED'],
  WORKING: ['WORKING', 'INPUT_REQUIRED', 'COMPLETED', 'SUBMITTED', 'FAILED', 'CANCELED'],
  INPUT_REQUIRED: ['WORKING', 'SUBMITTED', 'FAILED', 'CANCELED'],
  COMPLETED: [],
  FAILED: [],
  CANCELED: [],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * What each command may start from. Narrower than TRANSITIONS: INPUT_REQUIRED → WORKING is legal,
 * but only by providing the input, not by reporting progress.
 */
const COMMANDS = {
  claim: { from: ['SUBMITTED'], to: 'ASSIGNED' },
  reportProgress: { from: ['ASSIGNED', 'WORKING'], to: 'WORKING' },
  requestInput: { from: ['WORKING'], to: 'INPUT_REQUIRED' },
  provideInput: { from: ['INPUT_REQUIRED'], to: 'WORKING' },
  complete: { from: ['ASSIGNED', 'WORKING'], to: 'COMPLETED' },
  fail: { from: ['ASSIGNED', 'WORKING', 'INPUT_REQUIRED'], to: 'FAILED' },
  cancel: { from: OPEN_STATES, to: 'CANCELED' },
} as const satisfies Record<string, { from: readonly TaskState[]; to: TaskState }>;

export type TaskCommand = keyof typeof COMMANDS;

export function illegalTransition(taskId: string, from: TaskState, to: TaskState): Error {
  return conflict(`Task "${taskId}" cannot go from ${from} to ${to}`, { from, to });
}

function assertCommand(task: Task, command: TaskCommand): void {
  const rule = COMMANDS[command];
  if (!(rule.from as readonly TaskState[]).includes(task.state)) throw illegalTransition(task.id, task.state, rule.to);
}

function assertHolder(task: Task, agentId: string): void {
  if (task.agentId !== agentId) {
    throw conflict(`Task "${task.id}" is held by another agent, not "${agentId}"`, { taskId: task.id, agentId });
  }
}

export interface RetryPolicy {
  initialIntervalSeconds: number;
  backoffCoefficient: number;
  maximumIntervalSeconds: number;
  maximumAttempts: number;
}

export interface TaskProgress {
  percent: number;
  message: string | null;
  updatedAt: string;
}

export interface TaskFailure {
  message: string;
  type: string | null;
  details: unknown;
}

export interface Task {
  id: string;
  tenantId: string;
  title: string;
  description: string | null;
  input: unknown;
  requiredSkillTags: string[];
  priority: number;
  state: TaskState;
  attempts: number;
  retryPolicy: RetryPolicy;
  timeoutSeconds: number;
  progress: TaskProgress | null;
  result: unknown;
  error: TaskFailure | null;
  /** The holder, or the last holder once the task is back in SUBMITTED or ended. */
  agentId: string | null;
  leaseExpiresAt: string | null;
  attemptStartedAt: string | null;
  /**
   * When the current attempt times out. Waiting for input is not the agent's time, so the
   * deadline moves forward by the wait when the input arrives.
   */
  attemptDeadlineAt: string | null;
  inputRequestedAt: string | null;
  availableAt: string;
  workflowRunId: string | null;
  workflowStepId: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  version: number;
}

export const iso = (ms: number): string => new Date(ms).toISOString();
const plusSeconds = (ms: number, seconds: number): string => iso(ms + Math.round(seconds * 1000));

/** The validated fields of a new task, from submitTask or a workflow step. */
export interface TaskSpec {
  title: string;
  description: string | null;
  input: unknown;
  requiredSkillTags: string[];
  priority: number;
  retryPolicy: RetryPolicy;
  timeoutSeconds: number;
}

export function newTask(spec: TaskSpec, ids: { id: string; tenantId: string; workflowRunId?: string; workflowStepId?: string }, now: number): Task {
  const at = iso(now);
  return {
    ...spec,
    id: ids.id,
    tenantId: ids.tenantId,
    state: 'SUBMITTED',
    attempts: 0,
    progress: null,
    result: null,
    error: null,
    agentId: null,
    leaseExpiresAt: null,
    attemptStartedAt: null,
    attemptDeadlineAt: null,
    inputRequestedAt: null,
    availableAt: at,
    workflowRunId: ids.workflowRunId ?? null,
    workflowStepId: ids.workflowStepId ?? null,
    createdAt: at,
    updatedAt: at,
    startedAt: null,
    finishedAt: null,
    version: 1,
  };
}

function next(task: Task, now: number, changes: Partial<Task>): Task {
  return { ...task, ...changes, updatedAt: iso(now), version: task.version + 1 };
}

/** Whether the task may be claimed now by an agent offering these tags (the store's claim query, in words). */
export function isClaimable(task: Task, skillTags: readonly string[], now: number): boolean {
  return task.state === 'SUBMITTED' && Date.parse(task.availableAt) <= now && task.requiredSkillTags.every((t) => skillTags.includes(t));
}

export function claim(task: Task, agentId: string, leaseSeconds: number, now: number): Task {
  assertCommand(task, 'claim');
  return next(task, now, {
    state: 'ASSIGNED',
    agentId,
    attempts: task.attempts + 1,
    leaseExpiresAt: plusSeconds(now, leaseSeconds),
    attemptStartedAt: iso(now),
    attemptDeadlineAt: plusSeconds(now, task.timeoutSeconds),
    inputRequestedAt: null,
    progress: null,
    startedAt: task.startedAt ?? iso(now),
  });
}

export function reportProgress(task: Task, args: { agentId: string; percent: number; message: string | null; leaseSeconds: number }, now: number): Task {
  assertCommand(task, 'reportProgress');
  assertHolder(task, args.agentId);
  return next(task, now, {
    state: 'WORKING',
    progress: { percent: args.percent, message: args.message, updatedAt: iso(now) },
    leaseExpiresAt: plusSeconds(now, args.leaseSeconds),
  });
}

export function requestInput(task: Task, args: { agentId: string; message: string }, now: number): Task {
  assertCommand(task, 'requestInput');
  assertHolder(task, args.agentId);
  return next(task, now, {
    state: 'INPUT_REQUIRED',
    progress: { percent: task.progress?.percent ?? 0, message: args.message, updatedAt: iso(now) },
    // Nobody works while waiting for input: the lease and the attempt clock pause.
    leaseExpiresAt: null,
    inputRequestedAt: iso(now),
  });
}

/**
 * The input answers the agent's question. When both the task's input and the answer are JSON
 * objects the answer's keys are merged over the original (the agent keeps its instructions);
 * otherwise the answer replaces the input.
 */
export function provideInput(task: Task, args: { input: unknown; leaseSeconds: number }, now: number): Task {
  assertCommand(task, 'provideInput');
  const waitedMs = task.inputRequestedAt ? Math.max(0, now - Date.parse(task.inputRequestedAt)) : 0;
  const deadline = task.attemptDeadlineAt ? iso(Date.parse(task.attemptDeadlineAt) + waitedMs) : null;
  return next(task, now, {
    state: 'WORKING',
    input: isPlainObject(task.input) && isPlainObject(args.input) ? { ...task.input, ...args.input } : args.input,
    leaseExpiresAt: plusSeconds(now, args.leaseSeconds),
    attemptDeadlineAt: deadline,
    inputRequestedAt: null,
  });
}

export function complete(task: Task, args: { agentId: string; result: unknown }, now: number): Task {
  assertCommand(task, 'complete');
  assertHolder(task, args.agentId);
  return next(task, now, { ...ended(now), state: 'COMPLETED', result: args.result ?? null });
}

export function fail(task: Task, args: { agentId: string; error: TaskFailure; retryable: boolean }, now: number): Task {
  assertCommand(task, 'fail');
  assertHolder(task, args.agentId);
  return failAttempt(task, args.error, args.retryable, now);
}

export function cancel(task: Task, now: number): Task {
  assertCommand(task, 'cancel');
  return next(task, now, { ...ended(now), state: 'CANCELED' });
}

function ended(now: number): Partial<Task> {
  return { leaseExpiresAt: null, attemptDeadlineAt: null, inputRequestedAt: null, finishedAt: iso(now) };
}

/**
 * The outcome of a failed attempt (Temporal): retried after the backoff delay while the failure
 * is retryable and attempts remain, otherwise FAILED for good. The error is kept either way, so a
 * pending retry shows why.
 */
export function failAttempt(task: Task, error: TaskFailure, retryable: boolean, now: number): Task {
  if (retryable && task.attempts < task.retryPolicy.maximumAttempts) {
    return next(task, now, {
      state: 'SUBMITTED',
      error,
      availableAt: plusSeconds(now, backoffSeconds(task.retryPolicy, Math.max(1, task.attempts))),
      leaseExpiresAt: null,
      attemptDeadlineAt: null,
      inputRequestedAt: null,
    });
  }
  return next(task, now, { ...ended(now), state: 'FAILED', error });
}

export type ExpiryReason = 'TIMEOUT' | 'LEASE_EXPIRED';

/**
 * Why the current attempt is over although its agent said nothing: the attempt's time is up
 * (even if the lease was renewed), or the lease was not renewed in time. INPUT_REQUIRED waits for
 * a person, so neither clock runs there.
 */
export function expiryReason(task: Task, now: number): ExpiryReason | null {
  if (task.state !== 'ASSIGNED' && task.state !== 'WORKING') return null;
  if (task.attemptDeadlineAt && Date.parse(task.attemptDeadlineAt) <= now) return 'TIMEOUT';
  if (task.leaseExpiresAt && Date.parse(task.leaseExpiresAt) <= now) return 'LEASE_EXPIRED';
  return null;
}

/** The expired attempt counts as a failed, retryable one; null when the attempt is still live. */
export function expire(task: Task, now: number): Task | null {
  const reason = expiryReason(task, now);
  if (!reason) return null;
  const message =
    reason === 'TIMEOUT'
      ? `attempt ${task.attempts} exceeded its timeout of ${task.timeoutSeconds} s`
      : `lease of agent "${task.agentId ?? ''}" expired without a progress report`;
  return failAttempt(task, { message, type: reason, details: { attempt: task.attempts, agentId: task.agentId } }, true, now);
}

/**
 * The agent was retired while holding the task: the attempt is withdrawn, not failed. The task
 * goes back to SUBMITTED, claimable at once by another agent, and the withdrawn attempt is given
 * back (attempts − 1), so a retirement never uses up the retry policy. Null when this agent does
 * not hold the task (any more): releasing twice changes nothing.
 */
export function release(task: Task, agentId: string, now: number): Task | null {
  if (task.agentId !== agentId || !ACTIVE_STATES.includes(task.state)) return null;
  return next(task, now, {
    state: 'SUBMITTED',
    attempts: Math.max(0, task.attempts - 1),
    availableAt: iso(now),
    leaseExpiresAt: null,
    attemptStartedAt: null,
    attemptDeadlineAt: null,
    inputRequestedAt: null,
  });
}

// ---------------------------------------------------------------------------------------------
// Who acts: callers, agents, delegation
// ---------------------------------------------------------------------------------------------

/** Who made a change (the caller's subject, or a system actor) and which agent it was made as. */
export interface Actor {
  subject: string;
  agentId: string | null;
}

/** An actor acting as an agent: every agent command (claim, progress, input request, complete, fail). */
export interface AgentActor extends Actor {
  agentId: string;
}

/** Changes nobody asked for in a request: recorded in the history under these names. */
export const SYSTEM_ACTORS = {
  leaseSweeper: { subject: 'system:lease-sweeper', agentId: null },
  workflowEngine: { subject: 'system:workflow-engine', agentId: null },
  agentRetirement: { subject: 'system:agent-retirement', agentId: null },
} as const satisfies Record<string, Actor>;

/** The scope that lets a caller that is not an agent act on tasks for a named agent. */
export const DELEGATE_SCOPE = 'tasks:delegate';

/** What of the caller's identity decides which agent it may act as. */
export interface Caller {
  kind: string;
  subject: string | null;
  scopes: readonly string[];
  /** Set when the caller is an agent (an agent credential or a JWT agent claim). */
  agentId?: string | null;
}

/** The caller's name in the history: its subject, or its kind when it has none. */
export function subjectOf(caller: Caller): string {
  return caller.subject ?? caller.kind;
}

/**
 * The agent a task command acts as. An agent acts only as itself (agentId may be omitted; naming
 * another is AGENT_MISMATCH, never silently replaced). Anyone else must name the agent
 * (AGENT_REQUIRED) and hold tasks:delegate to act for it (DELEGATION_FORBIDDEN).
 */
export function actingAgent(caller: Caller, requested: string | null): AgentActor {
  const self = caller.agentId ?? null;
  if (self !== null) {
    if (requested !== null && requested !== self) {
      throw domainError('AGENT_MISMATCH', `This credential acts as agent "${self}" and cannot act as agent "${requested}"`, {
        agentId: self,
        requestedAgentId: requested,
      });
    }
    return { subject: subjectOf(caller), agentId: self };
  }
  if (requested === null) {
    throw domainError('AGENT_REQUIRED', 'agentId is required: this caller is not an agent, so it must name the agent it acts for', { argument: 'agentId' });
  }
  if (!caller.scopes.includes(DELEGATE_SCOPE)) {
    throw domainError('DELEGATION_FORBIDDEN', `Acting for agent "${requested}" requires the ${DELEGATE_SCOPE} scope`, {
      agentId: requested,
      requiredScopes: [[DELEGATE_SCOPE]],
    });
  }
  return { subject: subjectOf(caller), agentId: requested };
}

/** An agent as the agents subgraph registered it, at the moment of a claim. */
export interface AgentStanding {
  id: string;
  status: string;
  /** Every tag of every registered skill. */
  skillTags: readonly string[];
}

/**
 * The tags a claim matches tasks against: the agent's registered tags, narrowed to `requested`
 * when given. Only an ACTIVE agent claims (AGENT_NOT_ACTIVE); a requested tag the agent did not
 * register is refused (SKILLS_NOT_REGISTERED), never quietly added.
 */
export function claimTags(agent: AgentStanding, requested: readonly string[] | null): string[] {
  if (agent.status !== 'ACTIVE') {
    throw domainError('AGENT_NOT_ACTIVE', `Agent "${agent.id}" is ${agent.status}: only ACTIVE agents claim tasks`, {
      agentId: agent.id,
      status: agent.status,
    });
  }
  const registered = [...new Set(agent.skillTags)];
  if (requested === null) return registered;
  const unregistered = requested.filter((tag) => !registered.includes(tag));
  if (unregistered.length > 0) {
    throw domainError('SKILLS_NOT_REGISTERED', `Agent "${agent.id}" has no registered skill with tag(s) ${unregistered.map((t) => `"${t}"`).join(', ')}`, {
      agentId: agent.id,
      unregisteredTags: unregistered,
      argument: 'skillTags',
    });
  }
  return [...requested];
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

export type TaskHistoryKind =
  | 'SUBMITTED'
  | 'CLAIMED'
  | 'STARTED'
  | 'INPUT_REQUESTED'
  | 'INPUT_PROVIDED'
  | 'COMPLETED'
  | 'RETRY_SCHEDULED'
  | 'FAILED'
  | 'LEASE_EXPIRED'
  | 'TIMED_OUT'
  | 'RELEASED'
  | 'CANCELED';

export interface TaskHistoryEntry {
  at: string;
  kind: TaskHistoryKind;
  from: TaskState | null;
  to: TaskState;
  actor: string;
  onBehalfOf: string | null;
  message: string | null;
}

/** What only the writer of a change knows: why (when the states alone do not tell) and a message. */
export interface HistoryNote {
  kind?: TaskHistoryKind;
  message?: string | null;
}

const EXPIRY_KINDS: Record<ExpiryReason, TaskHistoryKind> = { LEASE_EXPIRED: 'LEASE_EXPIRED', TIMEOUT: 'TIMED_OUT' };

/** The kind a state change is, when its writer did not say. */
export function historyKind(from: TaskState | null, to: TaskState): TaskHistoryKind {
  if (from === null) return 'SUBMITTED';
  switch (to) {
    case 'ASSIGNED':
      return 'CLAIMED';
    case 'WORKING':
      return from === 'INPUT_REQUIRED' ? 'INPUT_PROVIDED' : 'STARTED';
    case 'INPUT_REQUIRED':
      return 'INPUT_REQUESTED';
    case 'COMPLETED':
      return 'COMPLETED';
    case 'CANCELED':
      return 'CANCELED';
    case 'FAILED':
      return 'FAILED';
    case 'SUBMITTED':
      return 'RETRY_SCHEDULED';
  }
}

/** The history entry of a state change (before is null for a new task). */
export function historyEntry(before: Task | null, after: Task, actor: Actor, note: HistoryNote = {}): TaskHistoryEntry {
  const from = before?.state ?? null;
  const failed = from !== null && (after.state === 'SUBMITTED' || after.state === 'FAILED') && after.error !== before?.error;
  const derived = after.state === 'INPUT_REQUIRED' ? (after.progress?.message ?? null) : failed ? (after.error?.message ?? null) : null;
  return {
    at: after.updatedAt,
    kind: note.kind ?? historyKind(from, after.state),
    from,
    to: after.state,
    actor: actor.subject,
    onBehalfOf: actor.agentId,
    message: note.message === undefined ? derived : note.message,
  };
}

/** The note of an expired attempt: which clock ran out. */
export function expiryNote(task: Task, now: number): HistoryNote {
  const reason = expiryReason(task, now);
  return reason ? { kind: EXPIRY_KINDS[reason] } : {};
}

// ---------------------------------------------------------------------------------------------
// Retry policy (Temporal)
// ---------------------------------------------------------------------------------------------

export const RETRY_DEFAULTS = { initialIntervalSeconds: 1, backoffCoefficient: 2, maximumAttempts: 3 } as const;
/** The default maximum interval, as a multiple of the initial interval (Temporal's 100×). */
export const DEFAULT_MAXIMUM_INTERVAL_FACTOR = 100;

export interface RetryPolicyFields {
  initialIntervalSeconds?: number | null;
  backoffCoefficient?: number | null;
  maximumIntervalSeconds?: number | null;
  maximumAttempts?: number | null;
}

export function retryPolicy(input: RetryPolicyFields | null | undefined, field = 'retryPolicy'): RetryPolicy {
  const initialIntervalSeconds = numberInRange(
    input?.initialIntervalSeconds ?? RETRY_DEFAULTS.initialIntervalSeconds,
    `${field}.initialIntervalSeconds`,
    0.001,
    86_400,
  );
  const backoffCoefficient = numberInRange(input?.backoffCoefficient ?? RETRY_DEFAULTS.backoffCoefficient, `${field}.backoffCoefficient`, 1, 100);
  const maximumIntervalSeconds = numberInRange(
    input?.maximumIntervalSeconds ?? DEFAULT_MAXIMUM_INTERVAL_FACTOR * initialIntervalSeconds,
    `${field}.maximumIntervalSeconds`,
    initialIntervalSeconds,
    DEFAULT_MAXIMUM_INTERVAL_FACTOR * 86_400,
  );
  const maximumAttempts = intInRange(input?.maximumAttempts ?? RETRY_DEFAULTS.maximumAttempts, `${field}.maximumAttempts`, 1, 100);
  return { initialIntervalSeconds, backoffCoefficient, maximumIntervalSeconds, maximumAttempts };
}

/** Delay before retrying after failed attempt n (1-based): min(initial × coefficient^(n−1), maximum). */
export function backoffSeconds(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.initialIntervalSeconds * policy.backoffCoefficient ** (attempt - 1), policy.maximumIntervalSeconds);
}

// ---------------------------------------------------------------------------------------------
// Input validation
// ---------------------------------------------------------------------------------------------

export const LIMITS = {
  title: 200,
  description: 4000,
  message: 4000,
  errorType: 100,
  skillTags: 50,
  skillTagLength: 100,
  jsonBytes: 256 * 1024,
  leaseSeconds: { min: 5, max: 3600, default: 60 },
  timeoutSeconds: { min: 1, max: 86_400, default: 300 },
  priority: { min: -1000, max: 1000 },
  steps: 100,
  workflowName: 200,
} as const;

export interface TaskSpecFields {
  title: string;
  description?: string | null;
  input?: unknown;
  requiredSkillTags?: readonly string[] | null;
  priority?: number | null;
  retryPolicy?: RetryPolicyFields | null;
  timeoutSeconds?: number | null;
}

export function validateTaskSpec(input: TaskSpecFields, prefix = ''): TaskSpec {
  const value = input.input ?? null;
  jsonValue(value, `${prefix}input`, LIMITS.jsonBytes);
  return {
    title: text(input.title, `${prefix}title`, { min: 1, max: LIMITS.title }),
    description: optionalText(input.description, `${prefix}description`, LIMITS.description),
    input: value,
    requiredSkillTags: skillTags(input.requiredSkillTags ?? [], `${prefix}requiredSkillTags`),
    priority: intInRange(input.priority ?? 0, `${prefix}priority`, LIMITS.priority.min, LIMITS.priority.max),
    retryPolicy: retryPolicy(input.retryPolicy, `${prefix}retryPolicy`),
    timeoutSeconds: intInRange(
      input.timeoutSeconds ?? LIMITS.timeoutSeconds.default,
      `${prefix}timeoutSeconds`,
      LIMITS.timeoutSeconds.min,
      LIMITS.timeoutSeconds.max,
    ),
  };
}

/** Trimmed, non-empty, without duplicates (a set: order does not matter for matching). */
export function skillTags(values: readonly string[], field: string): string[] {
  return [...new Set(stringList(values, field, { maxItems: LIMITS.skillTags, maxLength: LIMITS.skillTagLength }))];
}

export function leaseSeconds(value: number | null | undefined): number {
  return intInRange(value ?? LIMITS.leaseSeconds.default, 'leaseSeconds', LIMITS.leaseSeconds.min, LIMITS.leaseSeconds.max);
}

export function percent(value: number): number {
  return intInRange(value, 'percent', 0, 100);
}

export function message(value: string | null | undefined, field = 'message'): string | null {
  return optionalText(value, field, LIMITS.message);
}

export function requiredMessage(value: string, field = 'message'): string {
  return text(value, field, { min: 1, max: LIMITS.message });
}

export function jsonInput(value: unknown, field: string): unknown {
  jsonValue(value ?? null, field, LIMITS.jsonBytes);
  return value ?? null;
}

export function taskFailure(input: { message: string; type?: string | null; details?: unknown }): TaskFailure {
  return {
    message: requiredMessage(input.message, 'error.message'),
    type: optionalText(input.type, 'error.type', LIMITS.errorType),
    details: jsonInput(input.details, 'error.details'),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Workflows (Argo DAG)
// ---------------------------------------------------------------------------------------------

export type WorkflowRunStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED';
export type StepRunStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'SKIPPED' | 'CANCELED';

export const isRunFinished = (status: WorkflowRunStatus): boolean => status !== 'RUNNING';

export interface WorkflowStep extends TaskSpec {
  id: string;
  /** A JSON object (or null): the released task's input is built by spreading it. */
  input: Record<string, unknown> | null;
  dependsOn: string[];
}

export interface WorkflowDefinitionSpec {
  name: string;
  description: string | null;
  steps: WorkflowStep[];
}

export interface WorkflowStepFields extends TaskSpecFields {
  id: string;
  dependsOn?: readonly string[] | null;
}

const STEP_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validateWorkflowDefinition(input: { name: string; description?: string | null; steps: readonly WorkflowStepFields[] }): WorkflowDefinitionSpec {
  const name = text(input.name, 'name', { min: 1, max: LIMITS.workflowName });
  const description = optionalText(input.description, 'description', LIMITS.description);
  if (input.steps.length < 1 || input.steps.length > LIMITS.steps) {
    throw badInput(`steps must have 1 to ${LIMITS.steps} steps, got ${input.steps.length}`, { field: 'steps' });
  }
  const seen = new Set<string>();
  const steps = input.steps.map((raw, i): WorkflowStep => {
    const field = `steps[${i}]`;
    const id = raw.id.trim();
    if (!STEP_ID.test(id)) {
      throw badInput(`${field}.id must be 1 to 64 letters, digits, "_", "-" or ".", starting with a letter or digit`, { field: `${field}.id`, step: id });
    }
    if (seen.has(id)) throw badInput(`step "${id}" is defined more than once`, { field: `${field}.id`, step: id });
    seen.add(id);
    if (raw.input !== undefined && raw.input !== null && !isPlainObject(raw.input)) {
      throw badInput(`${field}.input must be a JSON object (step "${id}")`, { field: `${field}.input`, step: id });
    }
    const spec = validateTaskSpec(raw, `${field}.`);
    const dependsOn = [...new Set((raw.dependsOn ?? []).map((d) => d.trim()))];
    return { ...spec, id, input: isPlainObject(spec.input) ? spec.input : null, dependsOn };
  });
  assertDag(steps);
  return { name, description, steps };
}

/** Every dependsOn names a step and the steps form no cycle; the error names the offending step. */
export function assertDag(steps: readonly Pick<WorkflowStep, 'id' | 'dependsOn'>[]): void {
  const byId = new Map(steps.map((s) => [s.id, s]));
  for (const step of steps) {
    for (const dep of step.dependsOn) {
      if (!byId.has(dep)) throw badInput(`step "${step.id}" depends on unknown step "${dep}"`, { field: 'steps', step: step.id });
    }
  }
  // Depth-first search; a step met again while still on the path closes a cycle.
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): void => {
    const mark = state.get(id);
    if (mark === 'done') return;
    if (mark === 'visiting') {
      const cycle = [...path.slice(path.indexOf(id)), id];
      throw badInput(`steps form a cycle: ${cycle.join(' → ')} (step "${id}")`, { field: 'steps', step: id, cycle });
    }
    state.set(id, 'visiting');
    path.push(id);
    for (const dep of byId.get(id)?.dependsOn ?? []) visit(dep);
    path.pop();
    state.set(id, 'done');
  };
  for (const step of steps) visit(step.id);
}

export interface RunAdvance {
  /** Steps whose dependencies all succeeded: create their tasks now. */
  start: string[];
  /** Pending steps that will never run because the run failed. */
  skip: string[];
  /** Open steps to cancel (their tasks too) because the run is canceled. */
  cancel: string[];
  status: WorkflowRunStatus;
}

/**
 * Decides what happens next in a RUNNING run, given each step's status.
 * - A CANCELED step (or a cancel request) cancels the run: every open step is canceled.
 * - A FAILED step (after its retries) fails the run at once: nothing new starts (Argo's
 *   failFast), so every pending step is skipped, dependents first among them. Steps already
 *   running finish on their own.
 * - Otherwise every pending step whose dependencies all SUCCEEDED starts, and the run SUCCEEDED
 *   once every step did.
 */
export function advanceRun(
  steps: readonly Pick<WorkflowStep, 'id' | 'dependsOn'>[],
  statuses: ReadonlyMap<string, StepRunStatus>,
  opts: { cancel?: boolean } = {},
): RunAdvance {
  const status = (id: string): StepRunStatus => statuses.get(id) ?? 'PENDING';
  const all = steps.map((s) => status(s.id));
  if (opts.cancel || all.includes('CANCELED')) {
    const cancel = steps.filter((s) => status(s.id) === 'PENDING' || status(s.id) === 'RUNNING').map((s) => s.id);
    return { start: [], skip: [], cancel, status: 'CANCELED' };
  }
  if (all.includes('FAILED') || all.includes('SKIPPED')) {
    return { start: [], skip: skippedSteps(steps, status), cancel: [], status: 'FAILED' };
  }
  const start = steps.filter((s) => status(s.id) === 'PENDING' && s.dependsOn.every((d) => status(d) === 'SUCCEEDED')).map((s) => s.id);
  return { start, skip: [], cancel: [], status: all.every((s) => s === 'SUCCEEDED') ? 'SUCCEEDED' : 'RUNNING' };
}

/** Pending steps in skip order: those downstream of a failure first (transitively), then the rest. */
function skippedSteps(steps: readonly Pick<WorkflowStep, 'id' | 'dependsOn'>[], status: (id: string) => StepRunStatus): string[] {
  const blocked = new Set(steps.filter((s) => ['FAILED', 'SKIPPED', 'CANCELED'].includes(status(s.id))).map((s) => s.id));
  const downstream: string[] = [];
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of steps) {
      if (status(s.id) === 'PENDING' && !blocked.has(s.id) && s.dependsOn.some((d) => blocked.has(d))) {
        blocked.add(s.id);
        downstream.push(s.id);
        grew = true;
      }
    }
  }
  const rest = steps.filter((s) => status(s.id) === 'PENDING' && !downstream.includes(s.id)).map((s) => s.id);
  return [...downstream, ...rest];
}

/** The step status a workflow task's terminal state settles; null while the task is open. */
export function stepStatusOf(state: TaskState): StepRunStatus | null {
  if (state === 'COMPLETED') return 'SUCCEEDED';
  if (state === 'FAILED') return 'FAILED';
  if (state === 'CANCELED') return 'CANCELED';
  return null;
}

/** A released step's task input: its own input, the run's input and its direct dependencies' results. */
export function stepTaskInput(
  step: Pick<WorkflowStep, 'input' | 'dependsOn'>,
  runInput: unknown,
  results: ReadonlyMap<string, unknown>,
): Record<string, unknown> {
  const upstream: Record<string, unknown> = {};
  for (const dep of step.dependsOn) upstream[dep] = results.get(dep) ?? null;
  return { ...(step.input ?? {}), workflowInput: runInput ?? null, upstream };
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

export const TASK_STATE_CHANGED = 'TaskStateChanged';
/**
 * Published by the agents subgraph (payload { agentId, from, to }) when an agent changes status;
 * orchestration releases a RETIRED agent's tasks. The name is the contract between the two.
 */
export const AGENT_STATUS_CHANGED = 'AgentStatusChanged';

export interface AgentStatusChangedPayload {
  agentId: string;
  from: string | null;
  to: string;
}
export const TASK_PROGRESS_REPORTED = 'TaskProgressReported';
export const WORKFLOW_RUN_STATUS_CHANGED = 'WorkflowRunStatusChanged';

export interface TaskStateChangedPayload {
  taskId: string;
  from: TaskState | null;
  to: TaskState;
  agentId: string | null;
  workflowRunId: string | null;
  [key: string]: unknown;
}

export interface TaskProgressReportedPayload {
  taskId: string;
  agentId: string | null;
  percent: number;
  message: string | null;
  [key: string]: unknown;
}

export interface WorkflowRunStatusChangedPayload {
  runId: string;
  from: WorkflowRunStatus | null;
  to: WorkflowRunStatus;
  [key: string]: unknown;
}

export function taskStateChanged(from: TaskState | null, task: Task): NewDomainEvent<TaskStateChangedPayload> {
  return {
    type: TASK_STATE_CHANGED,
    tenantId: task.tenantId,
    subjectId: task.id,
    occurredAt: task.updatedAt,
    payload: { taskId: task.id, from, to: task.state, agentId: task.agentId, workflowRunId: task.workflowRunId },
  };
}

export function taskProgressReported(task: Task): NewDomainEvent<TaskProgressReportedPayload> {
  return {
    type: TASK_PROGRESS_REPORTED,
    tenantId: task.tenantId,
    subjectId: task.id,
    occurredAt: task.updatedAt,
    payload: { taskId: task.id, agentId: task.agentId, percent: task.progress?.percent ?? 0, message: task.progress?.message ?? null },
  };
}

export function workflowRunStatusChanged(
  run: { id: string; tenantId: string },
  from: WorkflowRunStatus | null,
  to: WorkflowRunStatus,
  now: number,
): NewDomainEvent<WorkflowRunStatusChangedPayload> {
  return { type: WORKFLOW_RUN_STATUS_CHANGED, tenantId: run.tenantId, subjectId: run.id, occurredAt: iso(now), payload: { runId: run.id, from, to } };
}
