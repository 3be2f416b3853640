// All SQL of the knowledge graph. Every statement is scoped to a tenant; writes run in one
// transaction with their outbox events. Relations are never overwritten: a change closes the
// current row (valid_to, superseded_at) and opens a new one, so every read can be asked "as of"
// an instant. Traversals live in traversal.ts.
import { sql, type Kysely, type Selectable, type SqlBool, type Transaction } from 'kysely';
import type { Database, Dialect } from '../../../runtime/db.ts';
import { nowIso } from '../../../runtime/db.ts';
import { badInput, conflict, domainError, notFound } from '../../../runtime/errors.ts';
import { Idempotency, type IdempotentRequest } from '../../../runtime/idempotency.ts';
import { newId } from '../../../runtime/ids.ts';
import type { Logger } from '../../../runtime/logger.ts';
import { inTransaction, type Emit, type EventSink } from '../../../runtime/unit-of-work.ts';
import { compare, dimensionMismatch } from '../domain.ts';
import {
  GraphEntityChanged,
  GraphRelationChanged,
  searchableText,
  searchTerms,
  type Direction,
  type EntityDraft,
  type EntityRef,
  type EntitySearchRequest,
  type ExpandRequest,
  type GraphChange,
  type GraphEventPayload,
  type PathRequest,
  type RelationDraft,
} from './domain.ts';
import { expand, shortestPath } from './traversal.ts';
import { type EntityVersionRow, type GraphEntityVersionsTable, history, keepVersions, statesAsOf } from './versions.ts';

export interface GraphEntitiesTable {
  id: string;
  tenant_id: string;
  type: string;
  key: string;
  name: string;
  namespace: string;
  properties: string;
  vector: string | null;
  dimension: number | null;
  merged_into: string | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  version: number;
}

export interface GraphEntityMemoriesTable {
  tenant_id: string;
  entity_id: string;
  memory_id: string;
}

export interface GraphRelationsTable {
  id: string;
  tenant_id: string;
  type: string;
  source_id: string;
  target_id: string;
  properties: string;
  weight: number;
  valid_from: string;
  valid_to: string | null;
  recorded_at: string;
  superseded_at: string | null;
}

/** SQLite only: the FTS5 table (its hidden `rank` column is bm25, lower is better). */
export interface GraphEntitiesFtsTable {
  text: string;
  entity_id: string;
  tenant_id: string;
  rank: number;
}

export interface GraphDB {
  graph_entities: GraphEntitiesTable;
  graph_entity_memories: GraphEntityMemoriesTable;
  graph_relations: GraphRelationsTable;
  graph_entities_fts: GraphEntitiesFtsTable;
  graph_entity_versions: GraphEntityVersionsTable;
}

export type GraphDb = Kysely<GraphDB> | Transaction<GraphDB>;

/** An entity as resolvers see it. */
export interface EntityRow {
  id: string;
  tenantId: string;
  type: string;
  key: string;
  name: string;
  namespace: string;
  properties: unknown;
  vector: number[] | null;
  dimension: number | null;
  mergedInto: string | null;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  version: number;
}

/** One row of a relation's history. */
export interface RelationRow {
  id: string;
  tenantId: string;
  type: string;
  sourceId: string;
  targetId: string;
  properties: unknown;
  weight: number;
  validFrom: string;
  validTo: string | null;
  recordedAt: string;
  supersededAt: string | null;
}

export interface GraphNodeRow {
  entity: EntityRow;
  depth: number;
}

export interface GraphResultRow {
  nodes: GraphNodeRow[];
  edges: RelationRow[];
  truncated: boolean;
}

export interface GraphPathRow {
  nodes: EntityRow[];
  edges: RelationRow[];
  length: number;
  cost: number;
}

export interface EntityHit {
  entity: EntityRow;
  score: number;
}

export interface GraphEventRow {
  change: GraphChange;
  entityTypes: string[];
  entityId: string | null;
  relationId: string | null;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

/** What a read may see: entities in namespaces under any of these (null: the whole tenant). */
export type Readable = string[] | null;

export interface RelationQuery {
  type: string | null;
  direction: Direction;
  asOf: string;
  history: boolean;
  limit: number;
}

const CHUNK = 400;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Valid at `asOf` (valid time). */
export function validAt(asOf: string) {
  return sql<SqlBool>`(graph_relations.valid_from <= ${asOf} and (graph_relations.valid_to is null or graph_relations.valid_to > ${asOf}))`;
}

/** The entity existed at `asOf`. */
export function existedAt(asOf: string) {
  return sql<SqlBool>`(graph_entities.created_at <= ${asOf} and (graph_entities.deleted_at is null or graph_entities.deleted_at > ${asOf}))`;
}

export function isReadable(readable: Readable, namespace: string): boolean {
  return readable === null || readable.some((p) => namespace === p || namespace.startsWith(`${p}/`));
}

export class GraphStore {
  constructor(
    private readonly database: Database<GraphDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  now(): number {
    return this.clock();
  }

  nowIso(): string {
    return nowIso(this.clock);
  }

  get dialect(): Dialect {
    return this.database.dialect;
  }

  get db(): Kysely<GraphDB> {
    return this.database.db;
  }

  // --- Reads -------------------------------------------------------------------------------------

  /** The entity (a merged one answers the entity it was merged into); null once deleted. */
  async get(tenantId: string, id: string, readable: Readable = null, asOf: string | null = null): Promise<EntityRow | null> {
    const row = await this.follow(
      this.db,
      tenantId,
      await this.db.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst(),
    );
    return this.visible(tenantId, row, readable, asOf);
  }

  async getByKey(tenantId: string, type: string, key: string, readable: Readable = null, asOf: string | null = null): Promise<EntityRow | null> {
    const found = await this.db
      .selectFrom('graph_entities')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('type', '=', type)
      .where('key', '=', key)
      .executeTakeFirst();
    return this.visible(tenantId, await this.follow(this.db, tenantId, found), readable, asOf);
  }

  /** Every state the entity has had, oldest first, ending with the current one (at most `limit`, the newest). */
  async history(tenantId: string, id: string, limit: number): Promise<EntityVersionRow[]> {
    const row = await this.db.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? history(this.db, tenantId, decodeEntity(row), limit) : [];
  }

  /** Live now (asOf null), or existing at asOf in the state it had then; and readable. */
  private async visible(tenantId: string, row: Selectable<GraphEntitiesTable> | undefined, readable: Readable, asOf: string | null): Promise<EntityRow | null> {
    if (!row) return null;
    const [entity] = asOf === null ? [decodeEntity(row)] : await statesAsOf(this.db, tenantId, [decodeEntity(row)], asOf);
    if (!entity || !isReadable(readable, entity.namespace)) return null;
    return (asOf === null ? entity.deletedAt === null : existed(entity, asOf)) ? entity : null;
  }

  /**
   * Entities by id, as stored (deleted and merged ones included): the ends of relations. With
   * asOf, each in the state it had then.
   */
  async load(tenantId: string, ids: string[], asOf: string | null = null): Promise<Map<string, EntityRow>> {
    const out = new Map<string, EntityRow>();
    for (const part of chunks([...new Set(ids)])) {
      const rows = await this.db.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', part).execute();
      const decoded = rows.map(decodeEntity);
      for (const e of asOf === null ? decoded : await statesAsOf(this.db, tenantId, decoded, asOf)) out.set(e.id, e);
    }
    return out;
  }

  /** Resolves references to live entity ids (merges followed); NOT_FOUND names the first unknown one. */
  async resolve(db: GraphDb, tenantId: string, refs: { ref: EntityRef; field: string }[]): Promise<string[]> {
    const out: string[] = [];
    for (const { ref, field } of refs) {
      const q = db.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId);
      const found = await ('id' in ref ? q.where('id', '=', ref.id) : q.where('type', '=', ref.type).where('key', '=', ref.key)).executeTakeFirst();
      const row = await this.follow(db, tenantId, found);
      if (!row || row.deleted_at !== null) {
        const id = 'id' in ref ? ref.id : `${ref.type}/${ref.key}`;
        throw domainError('NOT_FOUND', `${field}: entity "${id}" not found`, { entity: 'Entity', id, field });
      }
      out.push(row.id);
    }
    return out;
  }

  private async follow(db: GraphDb, tenantId: string, row: Selectable<GraphEntitiesTable> | undefined): Promise<Selectable<GraphEntitiesTable> | undefined> {
    let current = row;
    for (let i = 0; i < 16 && current?.merged_into; i++) {
      current = await db.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', '=', current.merged_into).executeTakeFirst();
    }
    return current;
  }

  async memoryIds(tenantId: string, entityId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('graph_entity_memories')
      .select('memory_id')
      .where('tenant_id', '=', tenantId)
      .where('entity_id', '=', entityId)
      .orderBy('memory_id')
      .execute();
    return rows.map((r) => r.memory_id);
  }

  /** Live entities extracted from this memory. */
  async entitiesOfMemory(tenantId: string, memoryId: string, readable: Readable): Promise<EntityRow[]> {
    const rows = await this.db
      .selectFrom('graph_entity_memories')
      .innerJoin('graph_entities', 'graph_entities.id', 'graph_entity_memories.entity_id')
      .selectAll('graph_entities')
      .where('graph_entity_memories.tenant_id', '=', tenantId)
      .where('graph_entity_memories.memory_id', '=', memoryId)
      .where('graph_entities.deleted_at', 'is', null)
      .orderBy('graph_entities.type')
      .orderBy('graph_entities.key')
      .execute();
    return rows.map(decodeEntity).filter((e) => isReadable(readable, e.namespace));
  }

  /** Live entities in a namespace and below it, newest change first. */
  async inNamespace(tenantId: string, prefix: string, type: string | null, limit: number): Promise<EntityRow[]> {
    const pattern = `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}/%`;
    let q = this.db
      .selectFrom('graph_entities')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null)
      .where((eb) => eb.or([eb('namespace', '=', prefix), sql<SqlBool>`namespace like ${pattern} escape '\\'`]));
    if (type !== null) q = q.where('type', '=', type);
    const rows = await q.orderBy('updated_at', 'desc').orderBy('id').limit(limit).execute();
    return rows.map(decodeEntity);
  }

  /** The entity's relations valid at q.asOf, or (history) every row of them, oldest first. */
  async relations(tenantId: string, entityId: string, q: RelationQuery): Promise<RelationRow[]> {
    let query = this.db.selectFrom('graph_relations').selectAll().where('tenant_id', '=', tenantId);
    query = query.where((eb) =>
      q.direction === 'OUT'
        ? eb('source_id', '=', entityId)
        : q.direction === 'IN'
          ? eb('target_id', '=', entityId)
          : eb.or([eb('source_id', '=', entityId), eb('target_id', '=', entityId)]),
    );
    if (q.type !== null) query = query.where('type', '=', q.type);
    if (!q.history) query = query.where(validAt(q.asOf));
    const rows = await query.orderBy('valid_from').orderBy('recorded_at').orderBy('id').limit(q.limit).execute();
    return rows.map(decodeRelation);
  }

  async relationsById(tenantId: string, ids: string[]): Promise<Map<string, RelationRow>> {
    const out = new Map<string, RelationRow>();
    for (const part of chunks([...new Set(ids)])) {
      const rows = await this.db.selectFrom('graph_relations').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', part).execute();
      for (const r of rows) out.set(r.id, decodeRelation(r));
    }
    return out;
  }

  /** The entities at the other end of the entity's relations valid at asOf. */
  async neighbours(tenantId: string, entityId: string, q: RelationQuery, readable: Readable): Promise<EntityRow[]> {
    const rels = await this.relations(tenantId, entityId, { ...q, history: false });
    const ids = [...new Set(rels.map((r) => (r.sourceId === entityId ? r.targetId : r.sourceId)))];
    const byId = await this.load(tenantId, ids, q.asOf);
    return ids.flatMap((id) => {
      const e = byId.get(id);
      return e && existed(e, q.asOf) && isReadable(readable, e.namespace) ? [e] : [];
    });
  }

  expand(tenantId: string, req: ExpandRequest, readable: Readable): Promise<GraphResultRow> {
    return expand(this, tenantId, req, readable);
  }

  shortestPath(tenantId: string, req: PathRequest, readable: Readable): Promise<GraphPathRow | null> {
    return shortestPath(this, tenantId, req, readable);
  }

  /** Full-text over name and properties, and/or exact nearest vectors; both fused by reciprocal rank. */
  async search(tenantId: string, req: EntitySearchRequest, readable: Readable): Promise<EntityHit[]> {
    const depth = Math.min(200, req.k * 4);
    const lexical = req.text === null ? [] : await this.lexical(tenantId, req, depth);
    const vector = req.vector === null ? [] : await this.nearest(tenantId, req, depth);
    const scores = new Map<string, number>();
    if (lexical.length > 0 && vector.length > 0) {
      const fuse = (list: { id: string }[]) => {
        for (const [i, c] of list.entries()) scores.set(c.id, (scores.get(c.id) ?? 0) + 1 / (60 + i + 1));
      };
      fuse(lexical);
      fuse(vector);
    } else {
      for (const c of [...lexical, ...vector]) scores.set(c.id, c.score);
    }
    const byId = await this.load(tenantId, [...scores.keys()], req.asOf);
    return [...scores]
      .flatMap(([id, score]) => {
        const entity = byId.get(id);
        return entity && isReadable(readable, entity.namespace) ? [{ entity, score }] : [];
      })
      .sort((a, b) => b.score - a.score || (a.entity.id < b.entity.id ? -1 : 1))
      .slice(0, req.k);
  }

  private async lexical(tenantId: string, req: EntitySearchRequest, limit: number): Promise<{ id: string; score: number }[]> {
    const terms = searchTerms(req.text ?? '');
    if (terms.length === 0) return [];
    if (this.dialect === 'sqlite') {
      const match = terms.map((t) => `"${t}"`).join(' OR ');
      let q = this.db
        .selectFrom('graph_entities_fts')
        .innerJoin('graph_entities', 'graph_entities.id', 'graph_entities_fts.entity_id')
        .select(['graph_entities.id as id', 'graph_entities_fts.rank as rank'])
        .where(sql<SqlBool>`graph_entities_fts match ${match}`)
        .where('graph_entities_fts.tenant_id', '=', tenantId)
        .where('graph_entities.tenant_id', '=', tenantId)
        .where(existedAt(req.asOf));
      if (req.types) q = q.where('graph_entities.type', 'in', req.types);
      const rows = await q.orderBy('graph_entities_fts.rank').limit(limit).execute();
      return rows.map((r) => ({ id: r.id, score: -Number(r.rank) }));
    }
    const query = terms.join(' | ');
    let q = this.db
      .selectFrom('graph_entities')
      .select(['id', sql<number>`ts_rank_cd(search_vector, to_tsquery('english', ${query}))`.as('score')])
      .where(sql<SqlBool>`search_vector @@ to_tsquery('english', ${query})`)
      .where('tenant_id', '=', tenantId)
      .where(existedAt(req.asOf));
    if (req.types) q = q.where('type', 'in', req.types);
    const rows = await q.orderBy('score', 'desc').orderBy('id').limit(limit).execute();
    return rows.map((r) => ({ id: r.id, score: Number(r.score) }));
  }

  private async nearest(tenantId: string, req: EntitySearchRequest, limit: number): Promise<{ id: string; score: number }[]> {
    const query = req.vector as number[];
    let q = this.db
      .selectFrom('graph_entities')
      .select(['id', 'vector'])
      .where('tenant_id', '=', tenantId)
      .where('dimension', '=', query.length)
      .where(existedAt(req.asOf));
    if (req.types) q = q.where('type', 'in', req.types);
    const rows = await q.execute();
    return rows
      .map((r) => ({ id: r.id, score: compare('COSINE', query, JSON.parse(r.vector as string) as number[]).similarity }))
      .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
      .slice(0, limit);
  }

  // --- Writes ------------------------------------------------------------------------------------

  /** Creates or updates entities by (type, key), all in one transaction; unchanged ones stay as they are. */
  async upsertEntities(tenantId: string, drafts: EntityDraft[], authorize: (current: EntityRow) => void, request?: IdempotentRequest): Promise<EntityRow[]> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
        once(trx, this.clock(), () => this.writeEntities(trx, emit, tenantId, drafts, authorize), {
          save: (rows: EntityRow[]) => rows.map((r) => r.id),
          load: async (saved) => {
            const byId = await this.load(tenantId, saved as string[]);
            return (saved as string[]).flatMap((id) => byId.get(id) ?? []);
          },
        }),
      ),
    );
  }

  private async writeEntities(
    trx: Transaction<GraphDB>,
    emit: Emit,
    tenantId: string,
    drafts: EntityDraft[],
    authorize: (current: EntityRow) => void,
  ): Promise<EntityRow[]> {
    const now = nowIso(this.clock);
    await this.checkDimensions(trx, tenantId, drafts);
    const existing = new Map<string, Selectable<GraphEntitiesTable>>();
    const byType = new Map<string, string[]>();
    for (const d of drafts) byType.set(d.type, [...(byType.get(d.type) ?? []), d.key]);
    for (const [type, keys] of byType) {
      for (const part of chunks(keys)) {
        const rows = await trx
          .selectFrom('graph_entities')
          .selectAll()
          .where('tenant_id', '=', tenantId)
          .where('type', '=', type)
          .where('key', 'in', part)
          .execute();
        for (const r of rows) existing.set(`${r.type}\u0000${r.key}`, r);
      }
    }
    const fresh: Selectable<GraphEntitiesTable>[] = [];
    const ids: string[] = [];
    for (const d of drafts) {
      const found = existing.get(`${d.type}\u0000${d.key}`);
      if (!found) {
        const row = {
          id: newId(),
          tenant_id: tenantId,
          type: d.type,
          key: d.key,
          name: d.name,
          namespace: d.namespace,
          properties: d.properties,
          vector: d.vector === null ? null : JSON.stringify(d.vector),
          dimension: d.vector?.length ?? null,
          merged_into: null,
          created_at: now,
          updated_at: now,
          deleted_at: null,
          version: 1,
        };
        fresh.push(row);
        ids.push(row.id);
        continue;
      }
      // The key of a merged entity names the entity it was merged into: only the memory links are added.
      const target = found.merged_into ? await this.follow(trx, tenantId, found) : found;
      if (!target) throw notFound('Entity', found.merged_into ?? found.id);
      authorize(decodeEntity(target));
      if (found.merged_into) {
        ids.push(target.id);
        continue;
      }
      const vector = d.vector === null ? null : JSON.stringify(d.vector);
      const same =
        target.deleted_at === null &&
        target.name === d.name &&
        target.namespace === d.namespace &&
        target.properties === d.properties &&
        target.vector === vector;
      if (!same) {
        await keepVersions(trx, [target], now);
        const updated = await trx
          .updateTable('graph_entities')
          .set({
            name: d.name,
            namespace: d.namespace,
            properties: d.properties,
            vector,
            dimension: d.vector?.length ?? null,
            deleted_at: null,
            updated_at: now,
            version: Number(target.version) + 1,
          })
          .where('tenant_id', '=', tenantId)
          .where('id', '=', target.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await this.indexText(trx, updated);
        emitEntity(emit, 'ENTITY_UPSERTED', updated, now);
      }
      ids.push(target.id);
    }
    for (const part of chunks(fresh, 200)) {
      await trx.insertInto('graph_entities').values(part).execute();
      for (const row of part) {
        await this.indexText(trx, row);
        emitEntity(emit, 'ENTITY_UPSERTED', row, now);
      }
    }
    for (const [i, d] of drafts.entries()) await this.link(trx, tenantId, ids[i] as string, d.memoryIds);
    const rows = new Map<string, EntityRow>();
    for (const part of chunks([...new Set(ids)])) {
      for (const r of await trx.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', part).execute())
        rows.set(r.id, decodeEntity(r));
    }
    return ids.map((id) => rows.get(id) as EntityRow);
  }

  private async link(trx: Transaction<GraphDB>, tenantId: string, entityId: string, memoryIds: string[]): Promise<void> {
    if (memoryIds.length === 0) return;
    await trx
      .insertInto('graph_entity_memories')
      .values(memoryIds.map((memory_id) => ({ tenant_id: tenantId, entity_id: entityId, memory_id })))
      .onConflict((oc) => oc.columns(['entity_id', 'memory_id']).doNothing())
      .execute();
  }

  /** Entity vectors of a tenant share one dimension (the first stored). */
  private async checkDimensions(trx: Transaction<GraphDB>, tenantId: string, drafts: EntityDraft[]): Promise<void> {
    const given = drafts.flatMap((d, i) => (d.vector ? [{ n: d.vector.length, field: `inputs[${i}].vector` }] : []));
    if (given.length === 0) return;
    const stored = await trx
      .selectFrom('graph_entities')
      .select('dimension')
      .where('tenant_id', '=', tenantId)
      .where('dimension', 'is not', null)
      .limit(1)
      .executeTakeFirst();
    const expected = stored ? Number(stored.dimension) : (given[0] as { n: number }).n;
    for (const g of given) if (g.n !== expected) throw dimensionMismatch(expected, g.n, g.field);
  }

  private async indexText(trx: Transaction<GraphDB>, row: Selectable<GraphEntitiesTable>): Promise<void> {
    if (this.dialect !== 'sqlite') return;
    await sql`delete from graph_entities_fts where rowid = (select rowid from graph_entities where id = ${row.id})`.execute(trx);
    await sql`insert into graph_entities_fts (rowid, text, entity_id, tenant_id) values ((select rowid from graph_entities where id = ${row.id}), ${searchableText(row.name, row.properties)}, ${row.id}, ${row.tenant_id})`.execute(
      trx,
    );
  }

  /**
   * Opens, changes or closes relations, one (source, type, target) at a time in order. The same
   * properties and weight again change nothing; other ones close the current row at validFrom
   * (default now) and open a new one; validTo alone ends the current row.
   */
  async upsertRelations(
    tenantId: string,
    drafts: RelationDraft[],
    authorize: (ends: EntityRow[]) => void,
    request?: IdempotentRequest,
  ): Promise<RelationRow[]> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
        once(trx, this.clock(), () => this.writeRelations(trx, emit, tenantId, drafts, authorize), {
          save: (rows: RelationRow[]) => rows.map((r) => r.id),
          load: async (saved) => {
            const byId = await this.relationsById(tenantId, saved as string[]);
            return (saved as string[]).flatMap((id) => byId.get(id) ?? []);
          },
        }),
      ),
    );
  }

  private async writeRelations(
    trx: Transaction<GraphDB>,
    emit: Emit,
    tenantId: string,
    drafts: RelationDraft[],
    authorize: (ends: EntityRow[]) => void,
  ): Promise<RelationRow[]> {
    const now = nowIso(this.clock);
    const out: RelationRow[] = [];
    const types = new Map<string, string>();
    for (const [i, d] of drafts.entries()) {
      const [sourceId, targetId] = (await this.resolve(trx, tenantId, [
        { ref: d.source, field: `inputs[${i}].source` },
        { ref: d.target, field: `inputs[${i}].target` },
      ])) as [string, string];
      const ends = await trx.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', [sourceId, targetId]).execute();
      authorize(ends.map(decodeEntity));
      for (const e of ends) types.set(e.id, e.type);
      const entityTypes = [...new Set([types.get(sourceId) as string, types.get(targetId) as string])];
      const current = await trx
        .selectFrom('graph_relations')
        .selectAll()
        .where('source_id', '=', sourceId)
        .where('type', '=', d.type)
        .where('target_id', '=', targetId)
        .where('tenant_id', '=', tenantId)
        .where('superseded_at', 'is', null)
        .executeTakeFirst();
      const sameFact = current && current.properties === d.properties && Number(current.weight) === d.weight;
      if (current && sameFact && (d.validTo ?? null) === current.valid_to) {
        out.push(decodeRelation(current));
        continue;
      }
      if (current && sameFact && current.valid_to === null && d.validTo !== null) {
        // The relation stopped being true: its row gets its end, nothing else changes.
        if (d.validTo <= current.valid_from)
          throw badInput(`inputs[${i}].validTo must be after the relation's validFrom ${current.valid_from}`, { field: `inputs[${i}].validTo` });
        const ended = await trx
          .updateTable('graph_relations')
          .set({ valid_to: d.validTo })
          .where('id', '=', current.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        emitRelation(emit, 'RELATION_CLOSED', ended, entityTypes, now);
        out.push(decodeRelation(ended));
        continue;
      }
      const at = d.validFrom ?? now;
      if (current) {
        if (at < current.valid_from) {
          throw badInput(`inputs[${i}].validFrom ${at} is before the current relation's validFrom ${current.valid_from}`, {
            field: `inputs[${i}].validFrom`,
          });
        }
        const closed = await trx
          .updateTable('graph_relations')
          .set({ valid_to: current.valid_to !== null && current.valid_to < at ? current.valid_to : at, superseded_at: now })
          .where('id', '=', current.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        if (current.valid_to === null) emitRelation(emit, 'RELATION_CLOSED', closed, entityTypes, now);
      }
      const opened = await trx
        .insertInto('graph_relations')
        .values({
          id: newId(),
          tenant_id: tenantId,
          type: d.type,
          source_id: sourceId,
          target_id: targetId,
          properties: d.properties,
          weight: d.weight,
          valid_from: at,
          valid_to: d.validTo,
          recorded_at: now,
          superseded_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow()
        .catch((err: unknown) => {
          // Another transaction opened this relation meanwhile (PostgreSQL; SQLite writes one at a time).
          if (isUniqueViolation(err)) throw conflict(`inputs[${i}]: the relation was written concurrently; retry`, { field: `inputs[${i}]` });
          throw err;
        });
      emitRelation(emit, 'RELATION_OPENED', opened, entityTypes, now);
      out.push(decodeRelation(opened));
    }
    return out;
  }

  /**
   * Merges duplicates into one entity: every relation row of theirs (history included) now names
   * the survivor, relations that became duplicates or self-loops end now, memory links and
   * properties the survivor lacks carry over, and each duplicate's key answers the survivor.
   */
  async merge(tenantId: string, intoId: string, ids: string[], authorize: (current: EntityRow) => void): Promise<EntityRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const [into] = await this.resolve(trx, tenantId, [{ ref: { id: intoId }, field: 'intoId' }]);
      const dupIds = [
        ...new Set(
          await this.resolve(
            trx,
            tenantId,
            ids.map((id, i) => ({ ref: { id }, field: `ids[${i}]` })),
          ),
        ),
      ].filter((id) => id !== into);
      if (dupIds.length === 0) throw badInput('ids must name at least one entity other than intoId', { field: 'ids' });
      const all = await trx
        .selectFrom('graph_entities')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('id', 'in', [into as string, ...dupIds])
        .execute();
      const survivor = all.find((e) => e.id === into) as Selectable<GraphEntitiesTable>;
      const dups = all.filter((e) => e.id !== into);
      for (const e of all) authorize(decodeEntity(e));
      const group = [into as string, ...dupIds];
      // Relations inside the group become self-loops: they end now (those that were self-loops already stay).
      await trx
        .updateTable('graph_relations')
        .set({ valid_to: now })
        .where('tenant_id', '=', tenantId)
        .where('source_id', 'in', group)
        .where('target_id', 'in', group)
        .where((eb) => eb('source_id', '!=', eb.ref('target_id')))
        .where('valid_to', 'is', null)
        .execute();
      // Current rows that would name the same (source, type, target) once moved: the earliest stays,
      // the others end now (before the move: one current row per triple is a unique index).
      const current = await trx
        .selectFrom('graph_relations')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('superseded_at', 'is', null)
        .where((eb) => eb.or([eb('source_id', 'in', group), eb('target_id', 'in', group)]))
        .orderBy('valid_from')
        .orderBy('recorded_at')
        .orderBy('id')
        .execute();
      const moved = (id: string) => (group.includes(id) ? (into as string) : id);
      const kept = new Set<string>();
      for (const r of current) {
        const triple = `${moved(r.source_id)}\u0000${r.type}\u0000${moved(r.target_id)}`;
        if (!kept.has(triple)) {
          kept.add(triple);
          continue;
        }
        await trx
          .updateTable('graph_relations')
          .set({ valid_to: r.valid_to === null || r.valid_to > now ? now : r.valid_to, superseded_at: now })
          .where('id', '=', r.id)
          .execute();
      }
      await trx
        .updateTable('graph_relations')
        .set({ source_id: into as string })
        .where('tenant_id', '=', tenantId)
        .where('source_id', 'in', dupIds)
        .execute();
      await trx
        .updateTable('graph_relations')
        .set({ target_id: into as string })
        .where('tenant_id', '=', tenantId)
        .where('target_id', 'in', dupIds)
        .execute();
      const links = await trx
        .selectFrom('graph_entity_memories')
        .select('memory_id')
        .where('tenant_id', '=', tenantId)
        .where('entity_id', 'in', dupIds)
        .execute();
      await this.link(
        trx,
        tenantId,
        into as string,
        links.map((l) => l.memory_id),
      );
      let properties = JSON.parse(survivor.properties) as Record<string, unknown>;
      for (const d of dups) properties = { ...(JSON.parse(d.properties) as Record<string, unknown>), ...properties };
      await keepVersions(trx, [...dups, survivor], now);
      await trx
        .updateTable('graph_entities')
        .set({ merged_into: into as string, deleted_at: now, updated_at: now })
        .where('tenant_id', '=', tenantId)
        .where((eb) => eb.or([eb('id', 'in', dupIds), eb('merged_into', 'in', dupIds)]))
        .execute();
      const updated = await trx
        .updateTable('graph_entities')
        .set({ properties: JSON.stringify(properties), updated_at: now, version: Number(survivor.version) + 1 })
        .where('id', '=', into as string)
        .returningAll()
        .executeTakeFirstOrThrow();
      await this.indexText(trx, updated);
      for (const d of dups) emitEntity(emit, 'ENTITY_MERGED', d, now);
      emitEntity(emit, 'ENTITY_UPSERTED', updated, now);
      return decodeEntity(updated);
    });
  }

  /**
   * Deletes an entity: it no longer answers reads at or after now, but stays for reads as of
   * before. With relations still valid, CONFLICT unless cascade, which ends them now.
   */
  async delete(tenantId: string, id: string, cascade: boolean, authorize: (current: EntityRow) => void): Promise<boolean> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const row = await trx.selectFrom('graph_entities').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      if (!row || row.deleted_at !== null) return false;
      authorize(decodeEntity(row));
      const open = await trx
        .selectFrom('graph_relations')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where((eb) => eb.or([eb('source_id', '=', id), eb('target_id', '=', id)]))
        .where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', now)]))
        .execute();
      if (open.length > 0 && !cascade) {
        throw conflict(`Entity "${id}" still has ${open.length} valid relation(s): end them first, or delete with cascade`, { id, relations: open.length });
      }
      for (const part of chunks(open.map((r) => r.id))) await trx.updateTable('graph_relations').set({ valid_to: now }).where('id', 'in', part).execute();
      const others = [...new Set(open.map((r) => (r.source_id === id ? r.target_id : r.source_id)))];
      const types = new Map<string, string>();
      for (const part of chunks(others)) {
        for (const e of await trx.selectFrom('graph_entities').select(['id', 'type']).where('id', 'in', part).execute()) types.set(e.id, e.type);
      }
      for (const r of open) {
        emitRelation(
          emit,
          'RELATION_CLOSED',
          { ...r, valid_to: now },
          [...new Set([row.type, types.get(r.source_id === id ? r.target_id : r.source_id) ?? row.type])],
          now,
        );
      }
      await keepVersions(trx, [row], now);
      const deleted = await trx
        .updateTable('graph_entities')
        .set({ deleted_at: now, updated_at: now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      emitEntity(emit, 'ENTITY_DELETED', deleted, now);
      return true;
    });
  }
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export function existed(e: EntityRow, asOf: string): boolean {
  return e.createdAt <= asOf && (e.deletedAt === null || e.deletedAt > asOf);
}

function emitEntity(emit: Emit, change: GraphChange, row: Selectable<GraphEntitiesTable>, occurredAt: string): void {
  emit({
    type: GraphEntityChanged,
    tenantId: row.tenant_id,
    subjectId: row.id,
    occurredAt,
    payload: { change, entityTypes: [row.type], entityId: row.id, relationId: null, namespace: row.namespace } satisfies GraphEventPayload,
  });
}

function emitRelation(emit: Emit, change: GraphChange, row: Selectable<GraphRelationsTable>, entityTypes: string[], occurredAt: string): void {
  emit({
    type: GraphRelationChanged,
    tenantId: row.tenant_id,
    subjectId: row.id,
    occurredAt,
    payload: { change, entityTypes, entityId: row.source_id, relationId: row.id, namespace: null } satisfies GraphEventPayload,
  });
}

export function decodeEntity(r: Selectable<GraphEntitiesTable>): EntityRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    type: r.type,
    key: r.key,
    name: r.name,
    namespace: r.namespace,
    properties: JSON.parse(r.properties) as unknown,
    vector: r.vector === null ? null : (JSON.parse(r.vector) as number[]),
    dimension: r.dimension === null ? null : Number(r.dimension),
    mergedInto: r.merged_into,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
    version: Number(r.version),
  };
}

export function decodeRelation(r: Selectable<GraphRelationsTable>): RelationRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    type: r.type,
    sourceId: r.source_id,
    targetId: r.target_id,
    properties: JSON.parse(r.properties) as unknown,
    weight: Number(r.weight),
    validFrom: r.valid_from,
    validTo: r.valid_to,
    recordedAt: r.recorded_at,
    supersededAt: r.superseded_at,
  };
}
