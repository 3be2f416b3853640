// GraphQL → store: parse and validate the arguments (BAD_USER_INPUT before anything is read or
// written), call the store, and let the row types map onto the schema.
import { notFound } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import { intInRange, text } from '../../runtime/validate.ts';
import type { OrchestrationContext } from './context.ts';
import {
  TASK_PROGRESS_REPORTED,
  TASK_STATE_CHANGED,
  WORKFLOW_RUN_STATUS_CHANGED,
  type Actor,
  type AgentActor,
  type TaskStateChangedPayload,
  type WorkflowRunStatusChangedPayload,
  actingAgent,
  claimTags,
  jsonInput,
  leaseSeconds,
  message,
  percent,
  requiredMessage,
  skillTags,
  subjectOf,
  taskFailure,
  validateTaskSpec,
  validateWorkflowDefinition,
} from './domain.ts';
import type { Resolvers, TaskFilter, WorkflowRunFilter } from './generated/resolvers-types.ts';

// Defence in depth: the gateway already removed what the caller's scopes do not allow
// (@requiresScopes in schema/orchestration.graphql); these refuse it again from the signed identity.
function reading(ctx: OrchestrationContext): OrchestrationContext {
  requireScopes(ctx.identity, [['tasks:read']]);
  return ctx;
}

function writing(ctx: OrchestrationContext): OrchestrationContext {
  requireScopes(ctx.identity, [['tasks:write']]);
  return ctx;
}

/** The caller, as the history records it: its subject, and the agent it is when it is one. */
function callerActor(ctx: OrchestrationContext): Actor {
  return { subject: subjectOf(ctx.identity), agentId: ctx.identity.agentId ?? null };
}

/** The agent an agent command acts as (domain.actingAgent): the caller itself, or the agent a delegate names. */
function agentActor(ctx: OrchestrationContext, agentId: string | null | undefined): AgentActor {
  return actingAgent(ctx.identity, optionalId(agentId, 'agentId'));
}

/** Federation references come from the gateway: an id that cannot exist resolves to null. */
function referenceId(id: string): string | null {
  try {
    return parseId(id, 'id');
  } catch {
    return null;
  }
}

function taskFilter(filter: TaskFilter | null | undefined) {
  return {
    state: filter?.state ?? null,
    agentId: filter?.agentId ? parseId(filter.agentId, 'filter.agentId') : null,
    skillTag: filter?.skillTag ? text(filter.skillTag, 'filter.skillTag', { min: 1, max: 100 }) : null,
    workflowRunId: filter?.workflowRunId ? parseId(filter.workflowRunId, 'filter.workflowRunId') : null,
  };
}

function runFilter(filter: WorkflowRunFilter | null | undefined) {
  return {
    definitionId: filter?.definitionId ? parseId(filter.definitionId, 'filter.definitionId') : null,
    status: filter?.status ?? null,
  };
}

// --- Subscriptions: domain events from the bus (mutations, the lease sweeper, the DAG engine) ---

/** A subscription's optional id filter, checked before anything is subscribed. */
function optionalId(value: string | null | undefined, argument: string): string | null {
  return value === null || value === undefined ? null : parseId(value, argument);
}

interface TaskEventFilter {
  taskId: string | null;
  agentId: string | null;
  workflowRunId: string | null;
}

async function taskEventMatches(ctx: OrchestrationContext, event: DomainEvent, filter: TaskEventFilter): Promise<boolean> {
  const payload = event.payload as { agentId?: string | null; workflowRunId?: string | null };
  if (filter.taskId !== null && event.subjectId !== filter.taskId) return false;
  if (filter.agentId !== null && payload.agentId !== filter.agentId) return false;
  if (filter.workflowRunId === null) return true;
  // Progress reports do not name the run; a task never changes run, so its row tells.
  const runId = event.type === TASK_STATE_CHANGED ? payload.workflowRunId : (await ctx.store.getTask(ctx.tenantId, event.subjectId))?.workflowRunId;
  return runId === filter.workflowRunId;
}

/** Entities as they are now: each event runs with a fresh context, so these are fresh reads. */
async function eventTask(ctx: OrchestrationContext, id: string) {
  const task = await ctx.loaders.taskById.load(id);
  // Tasks and runs are never deleted: a missing one is corrupted data, reported as such.
  if (!task) throw notFound('Task', id);
  return task;
}

async function eventRun(ctx: OrchestrationContext, id: string) {
  const run = await ctx.loaders.runById.load(id);
  if (!run) throw notFound('WorkflowRun', id);
  return run;
}

/** The run a workflowRunUpdated event is about. */
function runIdOf(event: DomainEvent): string | null {
  return event.type === WORKFLOW_RUN_STATUS_CHANGED ? event.subjectId : ((event.payload as TaskStateChangedPayload).workflowRunId ?? null);
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,

  Query: {
    task: (_, { id }, ctx) => reading(ctx).loaders.taskById.load(parseId(id, 'id')),
    tasks: (_, { filter, first, after }, ctx) => reading(ctx).store.listTasks(ctx.tenantId, taskFilter(filter), pageRequest({ first, after })),
    workflowDefinition: (_, { id }, ctx) => reading(ctx).loaders.definitionById.load(parseId(id, 'id')),
    workflowDefinitions: (_, { name, first, after }, ctx) =>
      reading(ctx).store.listDefinitions(
        ctx.tenantId,
        name === null || name === undefined ? null : text(name, 'name', { min: 1, max: 200 }),
        pageRequest({ first, after }),
      ),
    workflowRun: (_, { id }, ctx) => reading(ctx).loaders.runById.load(parseId(id, 'id')),
    workflowRuns: (_, { filter, first, after }, ctx) => reading(ctx).store.listRuns(ctx.tenantId, runFilter(filter), pageRequest({ first, after })),
  },

  Mutation: {
    submitTask: (_, args, ctx) =>
      writing(ctx).store.submitTask(ctx.tenantId, callerActor(ctx), validateTaskSpec(args.input), idempotentRequest(ctx, 'submitTask', args)),
    cancelTask: (_, { id }, ctx) => writing(ctx).store.cancelTask(ctx.tenantId, parseId(id, 'id'), callerActor(ctx)),
    claimTask: async (_, args, ctx) => {
      writing(ctx);
      // Everything the caller sent is checked before the agents subgraph is asked.
      const actor = agentActor(ctx, args.agentId);
      const requested = args.skillTags === null || args.skillTags === undefined ? null : skillTags(args.skillTags, 'skillTags');
      const lease = leaseSeconds(args.leaseSeconds);
      const agent = await ctx.agents.standing(
        { tenantId: ctx.tenantId, onBehalfOf: ctx.identity.subject, requestId: ctx.identity.requestId ?? ctx.requestId },
        actor.agentId,
      );
      return ctx.store.claimTask(ctx.tenantId, actor, claimTags(agent, requested), lease);
    },
    // The agent commands below need no call to the agents subgraph: holding the task is what
    // entitles the agent, so a PAUSED agent finishes what it holds (a RETIRED one holds nothing).
    reportTaskProgress: (_, args, ctx) => {
      writing(ctx);
      const taskId = parseId(args.taskId, 'taskId');
      return ctx.store.reportProgress(ctx.tenantId, taskId, agentActor(ctx, args.agentId), {
        percent: percent(args.percent),
        message: message(args.message),
        leaseSeconds: leaseSeconds(args.leaseSeconds),
      });
    },
    requestTaskInput: (_, args, ctx) => {
      writing(ctx);
      const taskId = parseId(args.taskId, 'taskId');
      return ctx.store.requestInput(ctx.tenantId, taskId, agentActor(ctx, args.agentId), { message: requiredMessage(args.message) });
    },
    provideTaskInput: (_, args, ctx) => {
      writing(ctx);
      const taskId = parseId(args.taskId, 'taskId');
      return ctx.store.provideInput(ctx.tenantId, taskId, callerActor(ctx), {
        input: jsonInput(args.input, 'input'),
        leaseSeconds: leaseSeconds(args.leaseSeconds),
      });
    },
    completeTask: (_, args, ctx) => {
      writing(ctx);
      const taskId = parseId(args.taskId, 'taskId');
      return ctx.store.completeTask(ctx.tenantId, taskId, agentActor(ctx, args.agentId), { result: jsonInput(args.result, 'result') });
    },
    failTask: (_, args, ctx) => {
      writing(ctx);
      const taskId = parseId(args.taskId, 'taskId');
      return ctx.store.failTask(ctx.tenantId, taskId, agentActor(ctx, args.agentId), { error: taskFailure(args.error), retryable: args.retryable ?? true });
    },
    createWorkflowDefinition: (_, args, ctx) =>
      writing(ctx).store.createDefinition(ctx.tenantId, validateWorkflowDefinition(args.input), idempotentRequest(ctx, 'createWorkflowDefinition', args)),
    startWorkflowRun: (_, args, ctx) =>
      writing(ctx).store.startRun(
        ctx.tenantId,
        callerActor(ctx),
        parseId(args.definitionId, 'definitionId'),
        jsonInput(args.input, 'input'),
        idempotentRequest(ctx, 'startWorkflowRun', args),
      ),
    cancelWorkflowRun: (_, { id }, ctx) => writing(ctx).store.cancelRun(ctx.tenantId, callerActor(ctx), parseId(id, 'id')),
  },

  Subscription: {
    taskUpdated: {
      subscribe: (_, args, ctx) => {
        const filter = {
          taskId: optionalId(args.taskId, 'taskId'),
          agentId: optionalId(args.agentId, 'agentId'),
          workflowRunId: optionalId(args.workflowRunId, 'workflowRunId'),
        };
        return eventStreamsOf(reading(ctx)).stream({
          types: [TASK_STATE_CHANGED, TASK_PROGRESS_REPORTED],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(args.afterSequence),
          filter: (event) => taskEventMatches(ctx, event, filter),
        });
      },
      resolve: async (event: DomainEvent, _: unknown, ctx: OrchestrationContext) => {
        const task = await eventTask(ctx, event.subjectId);
        if (event.type === TASK_PROGRESS_REPORTED)
          return { kind: 'PROGRESS_REPORTED' as const, task, from: null, to: null, occurredAt: event.occurredAt, ...eventIdentity(event) };
        const { from, to } = event.payload as TaskStateChangedPayload;
        return { kind: 'STATE_CHANGED' as const, task, from, to, occurredAt: event.occurredAt, ...eventIdentity(event) };
      },
    },
    workflowRunUpdated: {
      subscribe: (_, args, ctx) => {
        const runId = optionalId(args.runId, 'runId');
        return eventStreamsOf(reading(ctx)).stream({
          types: [WORKFLOW_RUN_STATUS_CHANGED, TASK_STATE_CHANGED],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(args.afterSequence),
          filter: (event) => {
            const id = runIdOf(event);
            return id !== null && (runId === null || id === runId);
          },
        });
      },
      resolve: async (event: DomainEvent, _: unknown, ctx: OrchestrationContext) => {
        const run = await eventRun(ctx, runIdOf(event) ?? event.subjectId);
        if (event.type === WORKFLOW_RUN_STATUS_CHANGED) {
          const { from, to } = event.payload as WorkflowRunStatusChangedPayload;
          return { kind: 'STATUS_CHANGED' as const, run, from, to, task: null, occurredAt: event.occurredAt, ...eventIdentity(event) };
        }
        return {
          kind: 'TASK_UPDATED' as const,
          run,
          from: null,
          to: null,
          task: await eventTask(ctx, event.subjectId),
          occurredAt: event.occurredAt,
          ...eventIdentity(event),
        };
      },
    },
  },

  Task: {
    __resolveReference: (ref, ctx) => {
      const id = referenceId(ref.id);
      return id ? reading(ctx).loaders.taskById.load(id) : null;
    },
    agent: (task, _, ctx) => {
      requireScopes(ctx.identity, [['agents:read']]);
      return task.agentId ? { id: task.agentId } : null;
    },
    workflowRun: (task, _, ctx) => (task.workflowRunId ? ctx.loaders.runById.load(task.workflowRunId) : null),
    history: (task, { first }, ctx) => ctx.loaders.historyByTaskId(intInRange(first ?? 100, 'first', 1, 500)).load(task.id),
  },

  Agent: {
    __resolveReference: (ref) => ({ id: ref.id }),
    tasks: (agent, { state, first, after }, ctx) =>
      reading(ctx)
        .loaders.tasksByAgentId(state ?? null, pageRequest({ first, after }))
        .load(agent.id),
    activeTaskCount: (agent, _, ctx) => reading(ctx).loaders.activeTaskCountByAgentId.load(agent.id),
  },

  WorkflowDefinition: {
    __resolveReference: (ref, ctx) => {
      const id = referenceId(ref.id);
      return id ? reading(ctx).loaders.definitionById.load(id) : null;
    },
  },

  WorkflowRun: {
    __resolveReference: (ref, ctx) => {
      const id = referenceId(ref.id);
      return id ? reading(ctx).loaders.runById.load(id) : null;
    },
    definition: async (run, _, ctx) => {
      const definition = await ctx.loaders.definitionById.load(run.definitionId);
      // Runs reference their definition by foreign key: a miss is corrupted data, not user error.
      if (!definition) throw new Error(`workflow run ${run.id} references missing definition ${run.definitionId}`);
      return definition;
    },
    steps: (run, _, ctx) => ctx.loaders.stepRunsByRunId.load(run.id),
    tasks: (run, _, ctx) => ctx.loaders.tasksByRunId.load(run.id),
  },

  WorkflowStepRun: {
    task: (stepRun, _, ctx) => (stepRun.taskId ? ctx.loaders.taskById.load(stepRun.taskId) : null),
  },
};
