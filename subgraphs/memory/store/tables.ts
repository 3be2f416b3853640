// The memory subgraph's tables as kysely sees them (the same rows on SQLite and PostgreSQL).
import type { MemoryKind } from '../domain.ts';

export interface MemoriesTable {
  id: string;
  tenant_id: string;
  namespace: string;
  kind: MemoryKind;
  text: string;
  /** JSON object. */
  metadata: string;
  importance: number;
  /** Little-endian float64s (store/vectors.ts), or null. */
  embedding: Uint8Array | null;
  dimension: number | null;
  source_agent_id: string | null;
  source_task_id: string | null;
  source_workflow_run_id: string | null;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
  version: number;
  embedding_model: string | null;
}

export interface MemoryVersionsTable {
  tenant_id: string;
  memory_id: string;
  version: number;
  text: string;
  metadata: string;
  importance: number;
  recorded_at: string;
}

export interface MemoryVectorSpacesTable {
  tenant_id: string;
  dimension: number;
}

/** SQLite only: the FTS5 table (its hidden `rank` column is bm25, lower is better). */
export interface MemoriesFtsTable {
  text: string;
  memory_id: string;
  tenant_id: string;
  rank: number;
}

export interface MemoryDB {
  memories: MemoriesTable;
  memory_versions: MemoryVersionsTable;
  memory_vector_spaces: MemoryVectorSpacesTable;
  memories_fts: MemoriesFtsTable;
}
