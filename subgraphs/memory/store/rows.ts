// What the store hands out: decoded rows, search hits, and the scope of a read.
import type { Selectable } from 'kysely';
import type { Cursor } from '../../../runtime/pagination.ts';
import type { MemoryChange, MemoryFilter, MemoryKind, MemorySource } from '../domain.ts';
import type { Scored } from '../ranking.ts';
import type { MemoriesTable } from './tables.ts';
import { decodeVector } from './vectors.ts';

/** A memory as resolvers see it. */
export interface MemoryRow {
  id: string;
  tenantId: string;
  namespace: string;
  kind: MemoryKind;
  text: string;
  metadata: unknown;
  importance: number;
  vector: number[] | null;
  dimension: number | null;
  embeddingModel: string | null;
  source: MemorySource;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface MemoryVersionRow {
  version: number;
  text: string;
  metadata: unknown;
  importance: number;
  recordedAt: string;
}

/** An entity of another subgraph joined to memories by its id (Agent, Task). */
export interface EntityRef {
  id: string;
}

export interface SearchHit extends Omit<Scored, 'id'> {
  memory: MemoryRow;
}

export interface MemoryEventRow {
  change: MemoryChange;
  memoryId: string;
  namespace: string;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

/**
 * What a read may see: the namespaces under any of `prefixes` (null: the whole tenant), narrowed
 * by the filter.
 */
export interface Scope {
  prefixes: string[] | null;
  filter: MemoryFilter;
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

export function decode(r: Selectable<MemoriesTable>): MemoryRow {
  const bytes = r.embedding;
  let vector: number[] | null | undefined;
  return {
    id: r.id,
    tenantId: r.tenant_id,
    namespace: r.namespace,
    kind: r.kind,
    text: r.text,
    metadata: JSON.parse(r.metadata) as unknown,
    importance: Number(r.importance),
    // Decoded when read: a search or a list rarely asks for the vector.
    get vector() {
      vector ??= bytes === null ? null : Array.from(decodeVector(bytes));
      return vector;
    },
    dimension: r.dimension === null ? null : Number(r.dimension),
    embeddingModel: r.embedding_model,
    source: { agentId: r.source_agent_id, taskId: r.source_task_id, workflowRunId: r.source_workflow_run_id },
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}
