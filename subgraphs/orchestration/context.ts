// Per-request context: the store and the dataloaders that batch what a query asks for across
// many parents (N tasks' runs, N agents' counts...) into one statement each.
import DataLoader from 'dataloader';
import type { RequestContext } from '../../runtime/context.ts';
import type { Connection } from '../../runtime/pagination.ts';
import type { AgentDirectory } from './agent-directory.ts';
import type { TaskHistoryEntry, TaskState } from './domain.ts';
import type { OrchestrationStore, Page, StepRunRow, TaskRow, WorkflowDefinitionRow, WorkflowRunRow } from './store.ts';

export interface OrchestrationLoaders {
  taskById: DataLoader<string, TaskRow | null>;
  tasksByRunId: DataLoader<string, TaskRow[]>;
  activeTaskCountByAgentId: DataLoader<string, number>;
  /**
   * Agent id → that agent's page of tasks. One loader per distinct (state, first, after), so
   * every agent of a batch asking the same page shares one statement pair.
   */
  tasksByAgentId(state: TaskState | null, page: Page): DataLoader<string, Connection<TaskRow>>;
  /** Task id → its first `limit` history entries; one loader per limit. */
  historyByTaskId(limit: number): DataLoader<string, TaskHistoryEntry[]>;
  definitionById: DataLoader<string, WorkflowDefinitionRow | null>;
  runById: DataLoader<string, WorkflowRunRow | null>;
  stepRunsByRunId: DataLoader<string, StepRunRow[]>;
}

export interface OrchestrationContext extends RequestContext {
  store: OrchestrationStore;
  /** The agents subgraph, asked about the claiming agent at each claim. */
  agents: AgentDirectory;
  loaders: OrchestrationLoaders;
}

export function createOrchestrationContext(base: RequestContext, store: OrchestrationStore, agents: AgentDirectory): OrchestrationContext {
  return { ...base, store, agents, loaders: createLoaders(store, base.tenantId) };
}

function byId<T extends { id: string }>(rows: readonly T[], ids: readonly string[]): (T | null)[] {
  const map = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => map.get(id) ?? null);
}

function groupBy<T>(rows: readonly T[], keys: readonly string[], keyOf: (row: T) => string | null): T[][] {
  const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const row of rows) {
    const key = keyOf(row);
    if (key !== null) groups.get(key)?.push(row);
  }
  return keys.map((k) => groups.get(k) ?? []);
}

export function createLoaders(store: OrchestrationStore, tenantId: string): OrchestrationLoaders {
  const taskPages = new Map<string, DataLoader<string, Connection<TaskRow>>>();
  const histories = new Map<number, DataLoader<string, TaskHistoryEntry[]>>();
  return {
    taskById: new DataLoader(async (ids) => byId(await store.tasksByIds(tenantId, ids), ids)),
    tasksByRunId: new DataLoader(async (ids) => groupBy(await store.tasksByRunIds(tenantId, ids), ids, (t) => t.workflowRunId)),
    activeTaskCountByAgentId: new DataLoader(async (ids) => {
      const counts = await store.activeTaskCounts(tenantId, ids);
      return ids.map((id) => counts.get(id) ?? 0);
    }),
    tasksByAgentId(state, page) {
      const key = JSON.stringify([state, page.first, page.after?.createdAt ?? null, page.after?.id ?? null]);
      let loader = taskPages.get(key);
      if (!loader) {
        loader = new DataLoader((ids) => store.agentTaskConnections(tenantId, ids, state, page));
        taskPages.set(key, loader);
      }
      return loader;
    },
    historyByTaskId(limit) {
      let loader = histories.get(limit);
      if (!loader) {
        loader = new DataLoader(async (ids) => {
          const byTask = await store.taskHistory(tenantId, ids, limit);
          return ids.map((id) => byTask.get(id) ?? []);
        });
        histories.set(limit, loader);
      }
      return loader;
    },
    definitionById: new DataLoader(async (ids) => byId(await store.definitionsByIds(tenantId, ids), ids)),
    runById: new DataLoader(async (ids) => byId(await store.runsByIds(tenantId, ids), ids)),
    stepRunsByRunId: new DataLoader(async (ids) => groupBy(await store.stepRunsByRunIds(tenantId, ids), ids, (r) => r.runId)),
  };
}
