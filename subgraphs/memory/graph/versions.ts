// An entity's past states. The entity row holds its current state; every write that changes it
// (upsert, merge, delete) first copies the state it replaces here, valid from the row's
// updated_at until the write. Reads "as of" an instant put the state then in place of the
// current one, so properties, name and namespace are kept in time like relations are.
import type { Selectable, Transaction } from 'kysely';
import { newId } from '../../../runtime/ids.ts';
import type { EntityRow, GraphDb, GraphDB, GraphEntitiesTable } from './store.ts';

export interface GraphEntityVersionsTable {
  id: string;
  tenant_id: string;
  entity_id: string;
  version: number;
  name: string;
  namespace: string;
  /** JSON object, as in graph_entities. */
  properties: string;
  deleted_at: string | null;
  /** The entity had this state from valid_from (inclusive) until valid_to (exclusive). */
  valid_from: string;
  valid_to: string;
}

/** One state of an entity; validTo is null for the current one. */
export interface EntityVersionRow {
  version: number;
  name: string;
  namespace: string;
  properties: unknown;
  deleted: boolean;
  validFrom: string;
  validTo: string | null;
}

const CHUNK = 400;

/** Keeps the states these rows are about to leave (call before updating them, in the same transaction). */
export async function keepVersions(trx: Transaction<GraphDB>, rows: Selectable<GraphEntitiesTable>[], now: string): Promise<void> {
  const values = rows.map((r) => ({
    id: newId(),
    tenant_id: r.tenant_id,
    entity_id: r.id,
    version: Number(r.version),
    name: r.name,
    namespace: r.namespace,
    properties: r.properties,
    deleted_at: r.deleted_at,
    valid_from: r.updated_at,
    valid_to: now,
  }));
  for (let i = 0; i < values.length; i += CHUNK)
    await trx
      .insertInto('graph_entity_versions')
      .values(values.slice(i, i + CHUNK))
      .execute();
}

/**
 * The entities as they were at asOf: a row changed after asOf takes the state it had then (the
 * one whose validity contains asOf). Rows unchanged since asOf are returned as they are, without
 * a query, so reads "now" cost nothing more.
 */
export async function statesAsOf(db: GraphDb, tenantId: string, rows: EntityRow[], asOf: string): Promise<EntityRow[]> {
  const changed = rows.filter((r) => r.updatedAt > asOf).map((r) => r.id);
  if (changed.length === 0) return rows;
  const past = new Map<string, Selectable<GraphEntityVersionsTable>>();
  for (let i = 0; i < changed.length; i += CHUNK) {
    const found = await db
      .selectFrom('graph_entity_versions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('entity_id', 'in', changed.slice(i, i + CHUNK))
      .where('valid_from', '<=', asOf)
      .where('valid_to', '>', asOf)
      .execute();
    for (const v of found) {
      // Two writes in the same millisecond leave an empty interval; the later state wins.
      const seen = past.get(v.entity_id);
      if (!seen || v.valid_to > seen.valid_to || (v.valid_to === seen.valid_to && Number(v.version) > Number(seen.version))) past.set(v.entity_id, v);
    }
  }
  return rows.map((r) => {
    const v = past.get(r.id);
    if (!v) return r;
    return {
      ...r,
      name: v.name,
      namespace: v.namespace,
      properties: JSON.parse(v.properties) as unknown,
      deletedAt: v.deleted_at,
      version: Number(v.version),
      updatedAt: v.valid_from,
    };
  });
}

/** Every state of the entity, oldest first, ending with the current one; at most `limit` (the newest). */
export async function history(db: GraphDb, tenantId: string, current: EntityRow, limit: number): Promise<EntityVersionRow[]> {
  const rows = await db
    .selectFrom('graph_entity_versions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entity_id', '=', current.id)
    .orderBy('valid_to', 'desc')
    .orderBy('version', 'desc')
    .limit(Math.max(0, limit - 1))
    .execute();
  const states: EntityVersionRow[] = rows.reverse().map((v) => ({
    version: Number(v.version),
    name: v.name,
    namespace: v.namespace,
    properties: JSON.parse(v.properties) as unknown,
    deleted: v.deleted_at !== null,
    validFrom: v.valid_from,
    validTo: v.valid_to,
  }));
  states.push({
    version: current.version,
    name: current.name,
    namespace: current.namespace,
    properties: current.properties,
    deleted: current.deletedAt !== null,
    validFrom: current.updatedAt,
    validTo: null,
  });
  return states;
}
