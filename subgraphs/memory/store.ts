// All SQL of the memory subgraph. Every statement is scoped to a tenant; writes run in one
// transaction with their outbox events. Rows read the same on SQLite and PostgreSQL; the
// full-text index and the JSON operators of metadata filters are each engine's own.
import { sql, type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type Selectable, type SqlBool, type Transaction } from 'kysely';
import type { Database, Dialect } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { Idempotency, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  compare,
  dimensionMismatch,
  MemoryForgotten,
  MemoryRemembered,
  MemoryUpdated,
  queryTerms,
  type MemoryChange,
  type MemoryDraft,
  type MemoryEventPayload,
  type MemoryFilter,
  type MemoryKind,
  type MemoryPatch,
  type MemorySource,
  type MetadataCondition,
  type SearchRequest,
} from './domain.ts';
import { rank, type LexicalCandidate, type Scored, type VectorCandidate } from './ranking.ts';

export interface MemoriesTable {
  id: string;
  tenant_id: string;
  namespace: string;
  kind: MemoryKind;
  text: string;
  /** JSON object. */
  metadata: string;
  importance: number;
  /** JSON number[], or null. */
  vector: string | null;
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

type Db = Kysely<MemoryDB> | Transaction<MemoryDB>;
type Eb = ExpressionBuilder<MemoryDB, 'memories'>;

/** Candidates each list contributes to a fused search: enough that fusion can reorder the top k. */
const fusionDepth = (k: number) => Math.min(200, Math.max(50, k * 4));

/**
 * Parsed vectors by memory id and version, bounded: past the bound the oldest entries go (a
 * search then parses them again). 100,000 vectors of 384 dimensions are ~300 MB as Float64.
 */
class VectorCache {
  private readonly entries = new Map<string, { version: number; vector: Float64Array }>();
  constructor(private readonly maxEntries: number) {}

  get(id: string): { version: number; vector: Float64Array } | undefined {
    return this.entries.get(id);
  }

  set(id: string, version: number, vector: Float64Array): void {
    this.entries.delete(id);
    this.entries.set(id, { version, vector });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}

export class MemoryStore {
  private readonly vectors = new VectorCache(100_000);

  constructor(
    private readonly database: Database<MemoryDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  now(): number {
    return this.clock();
  }

  get dialect(): Dialect {
    return this.database.dialect;
  }

  /** The memory, unless it expired. */
  async get(tenantId: string, id: string): Promise<MemoryRow | null> {
    const now = nowIso(this.clock);
    const row = await this.database.db
      .selectFrom('memories')
      .selectAll()
      .where((eb) => unexpired(eb, now))
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? decode(row) : null;
  }

  /** Newest first, keyset-paginated; totalCount counts every match. */
  async list(tenantId: string, scope: Scope, page: PageQuery): Promise<Connection<MemoryRow>> {
    const db = this.database.db;
    const now = nowIso(this.clock);
    let query = db
      .selectFrom('memories')
      .selectAll()
      .where((eb) => this.matches(eb, tenantId, scope, now));
    const after = page.after;
    if (after) {
      query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await db
      .selectFrom('memories')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where((eb) => this.matches(eb, tenantId, scope, now))
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decode), page, Number(n));
  }

  /** The current version first, then the ones updates replaced; empty for an unknown memory. */
  async history(tenantId: string, id: string): Promise<MemoryVersionRow[]> {
    const current = await this.get(tenantId, id);
    if (!current) return [];
    const older = await this.database.db
      .selectFrom('memory_versions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('memory_id', '=', id)
      .orderBy('version', 'desc')
      .execute();
    return [
      { version: current.version, text: current.text, metadata: current.metadata, importance: current.importance, recordedAt: current.updatedAt },
      ...older.map((v) => ({
        version: Number(v.version),
        text: v.text,
        metadata: JSON.parse(v.metadata) as unknown,
        importance: Number(v.importance),
        recordedAt: v.recorded_at,
      })),
    ];
  }

  /** Stores the drafts in one transaction, all or none; a keyed repeat answers the first result. */
  async remember(tenantId: string, drafts: MemoryDraft[], request?: IdempotentRequest): Promise<MemoryRow[]> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
        once(trx, this.clock(), () => this.insert(trx, emit, tenantId, drafts), {
          save: (rows: MemoryRow[]) => rows.map((r) => r.id),
          load: async (saved) => {
            const ids = saved as string[];
            const rows = await trx.selectFrom('memories').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
            const byId = new Map(rows.map((r) => [r.id, decode(r)]));
            // A memory forgotten since is left out of the repeat's answer.
            return ids.flatMap((id) => byId.get(id) ?? []);
          },
        }),
      ),
    );
  }

  private async insert(trx: Transaction<MemoryDB>, emit: Emit, tenantId: string, drafts: MemoryDraft[]): Promise<MemoryRow[]> {
    const now = nowIso(this.clock);
    await this.checkDimensions(
      trx,
      tenantId,
      drafts.map((d, i) => ({ vector: d.vector, field: drafts.length === 1 ? 'input.vector' : `inputs[${i}].vector` })),
    );
    const rows = await trx
      .insertInto('memories')
      .values(
        drafts.map((d) => ({
          id: newId(),
          tenant_id: tenantId,
          namespace: d.namespace,
          kind: d.kind,
          text: d.text,
          metadata: d.metadata,
          importance: d.importance,
          vector: d.vector === null ? null : JSON.stringify(d.vector),
          dimension: d.vector?.length ?? null,
          source_agent_id: d.source.agentId,
          source_task_id: d.source.taskId,
          source_workflow_run_id: d.source.workflowRunId,
          expires_at: d.expiresAt,
          embedding_model: d.embeddingModel,
          created_at: now,
          updated_at: now,
          version: 1,
        })),
      )
      .returningAll()
      .execute();
    const decoded = rows.map(decode);
    for (const row of decoded) {
      await this.indexText(trx, row);
      emitFor(emit, MemoryRemembered, row);
    }
    return decoded;
  }

  /** Every vector of a tenant has one dimension, fixed by the first one stored. */
  private async checkDimensions(trx: Transaction<MemoryDB>, tenantId: string, vectors: { vector: number[] | null; field: string }[]): Promise<void> {
    const given = vectors.filter((v): v is { vector: number[]; field: string } => v.vector !== null);
    const first = given[0];
    if (!first) return;
    await trx
      .insertInto('memory_vector_spaces')
      .values({ tenant_id: tenantId, dimension: first.vector.length })
      .onConflict((oc) => oc.column('tenant_id').doNothing())
      .execute();
    const expected = await this.dimensionOf(trx, tenantId);
    for (const v of given) if (v.vector.length !== expected) throw dimensionMismatch(expected ?? 0, v.vector.length, v.field);
  }

  private async dimensionOf(db: Db, tenantId: string): Promise<number | null> {
    const space = await db.selectFrom('memory_vector_spaces').select('dimension').where('tenant_id', '=', tenantId).executeTakeFirst();
    return space ? Number(space.dimension) : null;
  }

  /** SQLite keeps the text in its FTS5 table too; PostgreSQL's tsvector column is generated. */
  private async indexText(trx: Transaction<MemoryDB>, row: MemoryRow): Promise<void> {
    if (this.database.dialect !== 'sqlite') return;
    await sql`delete from memories_fts where memory_id = ${row.id}`.execute(trx);
    await sql`insert into memories_fts (rowid, text, memory_id, tenant_id) values ((select rowid from memories where id = ${row.id}), ${row.text}, ${row.id}, ${row.tenantId})`.execute(
      trx,
    );
  }

  private async unindexText(trx: Transaction<MemoryDB>, ids: string[]): Promise<void> {
    if (this.database.dialect !== 'sqlite' || ids.length === 0) return;
    // By rowid (the memory's own): FTS5 finds those without scanning.
    await sql`delete from memories_fts where rowid in (select rowid from memories where id in (${sql.join(ids)}))`.execute(trx);
  }

  /**
   * Applies the patch, keeping the replaced version in memory_versions. `authorize` sees the
   * current memory (its namespace) before anything changes.
   */
  async update(
    tenantId: string,
    id: string,
    patch: MemoryPatch,
    expectedVersion: number | null | undefined,
    authorize: (current: MemoryRow) => void,
  ): Promise<MemoryRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const found = await trx
        .selectFrom('memories')
        .selectAll()
        .where((eb) => unexpired(eb, now))
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst();
      if (!found) throw notFound('Memory', id);
      const current = decode(found);
      authorize(current);
      if (expectedVersion != null && expectedVersion !== current.version) throw staleVersion(id, expectedVersion, current.version);
      if (patch.vector) await this.checkDimensions(trx, tenantId, [{ vector: patch.vector, field: 'input.vector' }]);
      await trx
        .insertInto('memory_versions')
        .values({
          tenant_id: tenantId,
          memory_id: id,
          version: current.version,
          text: found.text,
          metadata: found.metadata,
          importance: current.importance,
          recorded_at: current.updatedAt,
        })
        .execute();
      const updated = await trx
        .updateTable('memories')
        .set({
          ...(patch.text !== undefined ? { text: patch.text } : {}),
          ...(patch.kind !== undefined ? { kind: patch.kind } : {}),
          ...(patch.metadata !== undefined ? { metadata: patch.metadata } : {}),
          ...(patch.importance !== undefined ? { importance: patch.importance } : {}),
          ...(patch.vector !== undefined
            ? { vector: patch.vector === null ? null : JSON.stringify(patch.vector), dimension: patch.vector?.length ?? null }
            : {}),
          ...(patch.expiresAt !== undefined ? { expires_at: patch.expiresAt } : {}),
          ...(patch.embeddingModel !== undefined ? { embedding_model: patch.embeddingModel } : {}),
          updated_at: now,
          version: current.version + 1,
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .where('version', '=', current.version)
        .returningAll()
        .executeTakeFirst();
      // The version row's primary key already refuses a concurrent update of the same version.
      if (!updated) throw staleVersion(id, expectedVersion ?? current.version, current.version + 1);
      const row = decode(updated);
      if (patch.text !== undefined) await this.indexText(trx, row);
      emitFor(emit, MemoryUpdated, row);
      return row;
    });
  }

  /** Deletes the memory and its history; false when there was none. */
  async forget(tenantId: string, id: string, authorize: (current: MemoryRow) => void): Promise<boolean> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const found = await trx.selectFrom('memories').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      if (!found) return false;
      const row = decode(found);
      authorize(row);
      await this.delete(trx, emit, tenantId, [row]);
      return true;
    });
  }

  /** Deletes every memory in the scope (expired ones too); how many. */
  async forgetMatching(tenantId: string, scope: Scope): Promise<number> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const rows = await trx
        .selectFrom('memories')
        .selectAll()
        .where((eb) => this.matches(eb, tenantId, scope, null))
        .execute();
      await this.delete(trx, emit, tenantId, rows.map(decode));
      return rows.length;
    });
  }

  /** Deletes up to `limit` expired memories of any tenant; how many. */
  async sweepExpired(limit = 500): Promise<number> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const rows = await trx
        .selectFrom('memories')
        .selectAll()
        .where('expires_at', 'is not', null)
        .where('expires_at', '<=', nowIso(this.clock))
        .orderBy('expires_at')
        .limit(limit)
        .execute();
      const byTenant = new Map<string, MemoryRow[]>();
      for (const r of rows.map(decode)) byTenant.set(r.tenantId, [...(byTenant.get(r.tenantId) ?? []), r]);
      for (const [tenantId, memories] of byTenant) await this.delete(trx, emit, tenantId, memories);
      return rows.length;
    });
  }

  private async delete(trx: Transaction<MemoryDB>, emit: Emit, tenantId: string, rows: MemoryRow[]): Promise<void> {
    const now = nowIso(this.clock);
    // Bounded IN lists: a forget by filter may match thousands.
    for (let i = 0; i < rows.length; i += 500) {
      const ids = rows.slice(i, i + 500).map((r) => r.id);
      await this.unindexText(trx, ids);
      await trx.deleteFrom('memory_versions').where('tenant_id', '=', tenantId).where('memory_id', 'in', ids).execute();
      await trx.deleteFrom('memories').where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
    }
    for (const row of rows) emitFor(emit, MemoryForgotten, row, now);
  }

  // --- Search ----------------------------------------------------------------------------------

  async search(tenantId: string, scope: Scope, req: SearchRequest): Promise<SearchHit[]> {
    const now = this.clock();
    const depth = req.mode === 'HYBRID' || req.recencyWeight > 0 || req.importanceWeight > 0 ? fusionDepth(req.k) : req.k;
    const lexical =
      req.text === null
        ? []
        : await this.lexical(
            tenantId,
            scope,
            req.text,
            depth,
            nowIso(() => now),
          );
    const vector =
      req.vector === null
        ? []
        : await this.nearest(
            tenantId,
            scope,
            req,
            depth,
            nowIso(() => now),
          );
    const ids = [...new Set([...lexical.map((c) => c.id), ...vector.map((c) => c.id)])];
    if (ids.length === 0) return [];
    const rows = await this.database.db.selectFrom('memories').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
    const byId = new Map(rows.map((r) => [r.id, decode(r)]));
    const scored = rank(
      req,
      lexical.filter((c) => byId.has(c.id)),
      vector.filter((c) => byId.has(c.id)),
      (id) => {
        const m = byId.get(id) as MemoryRow;
        return { createdAt: m.createdAt, importance: m.importance };
      },
      now,
    );
    return scored.flatMap(({ id, ...hit }) => {
      const memory = byId.get(id);
      return memory ? [{ ...hit, memory }] : [];
    });
  }

  private async lexical(tenantId: string, scope: Scope, text: string, limit: number, now: string): Promise<LexicalCandidate[]> {
    const terms = queryTerms(text);
    if (terms.length === 0) return [];
    if (this.database.dialect === 'sqlite') {
      // Quoted terms joined with OR: the user's words, never FTS5 query syntax; bm25 ranks a
      // memory with more (and rarer) of them first.
      const match = terms.map((t) => `"${t}"`).join(' OR ');
      const rows = await this.database.db
        .selectFrom('memories_fts')
        .innerJoin('memories', 'memories.id', 'memories_fts.memory_id')
        .select(['memories.id as id', 'memories_fts.rank as rank'])
        .where(sql<SqlBool>`memories_fts match ${match}`)
        .where('memories_fts.tenant_id', '=', tenantId)
        .where((eb) => this.matches(eb as unknown as Eb, tenantId, scope, now))
        .orderBy('memories_fts.rank')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, score: -Number(r.rank) }));
    }
    const query = terms.join(' | ');
    const rows = await this.database.db
      .selectFrom('memories')
      .select(['id', sql<number>`ts_rank_cd(search_vector, to_tsquery('english', ${query}))`.as('score')])
      .where(sql<SqlBool>`search_vector @@ to_tsquery('english', ${query})`)
      .where((eb) => this.matches(eb, tenantId, scope, now))
      .orderBy('score', 'desc')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, score: Number(r.score) }));
  }

  /**
   * Exact nearest neighbours: every vector in scope is compared (see the README's vector search
   * section for why this and not an ANN index yet). Filters run in SQL first, so a filtered
   * search loses no recall. Only ids and versions come from SQL each time; the vectors
   * themselves are parsed once per version and kept (a memory's vector changes only with its
   * version, so a replica never compares against a stale one).
   */
  private async nearest(tenantId: string, scope: Scope, req: SearchRequest, limit: number, now: string): Promise<VectorCandidate[]> {
    const query = req.vector as number[];
    const expected = await this.dimensionOf(this.database.db, tenantId);
    if (expected === null) return [];
    if (expected !== query.length) throw dimensionMismatch(expected, query.length, 'input.vector');
    const rows = await this.database.db
      .selectFrom('memories')
      .select(['id', 'version'])
      .where('dimension', '=', query.length)
      .where((eb) => this.matches(eb, tenantId, scope, now))
      .execute();
    const missing = rows.filter((r) => this.vectors.get(r.id)?.version !== Number(r.version)).map((r) => r.id);
    for (let i = 0; i < missing.length; i += 500) {
      const loaded = await this.database.db
        .selectFrom('memories')
        .select(['id', 'version', 'vector'])
        .where('tenant_id', '=', tenantId)
        .where('id', 'in', missing.slice(i, i + 500))
        .execute();
      for (const r of loaded) if (r.vector !== null) this.vectors.set(r.id, Number(r.version), Float64Array.from(JSON.parse(r.vector) as number[]));
    }
    const best: VectorCandidate[] = [];
    for (const r of rows) {
      const cached = this.vectors.get(r.id);
      if (!cached || cached.version !== Number(r.version)) continue;
      const { distance, similarity } = compare(req.metric, query, cached.vector);
      best.push({ id: r.id, distance, similarity });
    }
    best.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
    return best.slice(0, limit);
  }

  // --- Filters ---------------------------------------------------------------------------------

  /** The scope as one condition; `now` null also matches expired memories (forgetting them). */
  private matches(eb: Eb, tenantId: string, scope: Scope, now: string | null): Expression<SqlBool> {
    const f = scope.filter;
    const conditions: Expression<SqlBool>[] = [eb('memories.tenant_id', '=', tenantId)];
    if (now !== null) conditions.push(unexpired(eb, now));
    if (scope.prefixes !== null) conditions.push(eb.or(scope.prefixes.map((p) => underNamespace(eb, p))));
    if (f.kinds) conditions.push(eb('memories.kind', 'in', f.kinds));
    if (f.createdAfter) conditions.push(eb('memories.created_at', '>=', f.createdAfter));
    if (f.createdBefore) conditions.push(eb('memories.created_at', '<', f.createdBefore));
    if (f.sourceTaskId) conditions.push(eb('memories.source_task_id', '=', f.sourceTaskId));
    for (const c of f.metadata) conditions.push(metadataMatches(this.database.dialect, c));
    return eb.and(conditions);
  }
}

function underNamespace(eb: Eb, prefix: string): Expression<SqlBool> {
  const pattern = `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}/%`;
  return eb.or([eb('memories.namespace', '=', prefix), sql<SqlBool>`${eb.ref('memories.namespace')} like ${pattern} escape '\\'`]);
}

/** One metadata condition in the engine's JSON functions; a field of another type never matches. */
function metadataMatches(dialect: Dialect, c: MetadataCondition): RawBuilder<SqlBool> {
  const segments = c.key.split('.');
  if (dialect === 'sqlite') {
    const path = `$${segments.map((s) => `."${s}"`).join('')}`;
    const type = sql`json_type(memories.metadata, ${path})`;
    const value = sql`json_extract(memories.metadata, ${path})`;
    const eq = (v: string | number | boolean) =>
      typeof v === 'boolean'
        ? sql<SqlBool>`${type} = ${v ? 'true' : 'false'}`
        : typeof v === 'number'
          ? sql<SqlBool>`(${type} in ('integer', 'real') and ${value} = ${v})`
          : sql<SqlBool>`(${type} = 'text' and ${value} = ${v})`;
    if (c.op === 'eq') return eq(c.value);
    if (c.op === 'in') return sql<SqlBool>`(${sql.join(c.values.map(eq), sql` or `)})`;
    const typed = c.type === 'number' ? sql`${type} in ('integer', 'real')` : sql`${type} = 'text'`;
    return sql<SqlBool>`(${sql.join([typed, ...bounds(c, value)], sql` and `)})`;
  }
  const node = sql`(memories.metadata::jsonb #> ${segments}::text[])`;
  const eq = (v: string | number | boolean) => sql<SqlBool>`${node} = ${JSON.stringify(v)}::jsonb`;
  if (c.op === 'eq') return eq(c.value);
  if (c.op === 'in') return sql<SqlBool>`(${sql.join(c.values.map(eq), sql` or `)})`;
  const text = sql`(memories.metadata::jsonb #>> ${segments}::text[])`;
  // The CASE keeps the cast from ever seeing a non-number (PostgreSQL may evaluate in any order).
  const value =
    c.type === 'number'
      ? sql`(case when jsonb_typeof(${node}) = 'number' then ${text}::double precision end)`
      : sql`(case when jsonb_typeof(${node}) = 'string' then ${text} end)`;
  return sql<SqlBool>`(${sql.join(bounds(c, value), sql` and `)})`;
}

function bounds(c: Extract<MetadataCondition, { op: 'range' }>, value: RawBuilder<unknown>): RawBuilder<unknown>[] {
  const parts: RawBuilder<unknown>[] = [];
  if (c.gt !== undefined) parts.push(sql`${value} > ${c.gt}`);
  if (c.gte !== undefined) parts.push(sql`${value} >= ${c.gte}`);
  if (c.lt !== undefined) parts.push(sql`${value} < ${c.lt}`);
  if (c.lte !== undefined) parts.push(sql`${value} <= ${c.lte}`);
  return parts;
}

function unexpired(eb: Eb, now: string): Expression<SqlBool> {
  return eb.or([eb('memories.expires_at', 'is', null), eb('memories.expires_at', '>', now)]);
}

function staleVersion(id: string, expectedVersion: number, actualVersion: number) {
  return conflict(`Memory "${id}" is at version ${actualVersion}, not the expected ${expectedVersion}: reload and retry`, {
    id,
    expectedVersion,
    actualVersion,
  });
}

function emitFor(emit: Emit, type: string, row: MemoryRow, occurredAt = row.updatedAt): void {
  emit({
    type,
    tenantId: row.tenantId,
    subjectId: row.id,
    occurredAt,
    payload: { memoryId: row.id, namespace: row.namespace, version: row.version } satisfies MemoryEventPayload,
  });
}

function decode(r: Selectable<MemoriesTable>): MemoryRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    namespace: r.namespace,
    kind: r.kind,
    text: r.text,
    metadata: JSON.parse(r.metadata) as unknown,
    importance: Number(r.importance),
    vector: r.vector === null ? null : (JSON.parse(r.vector) as number[]),
    dimension: r.dimension === null ? null : Number(r.dimension),
    embeddingModel: r.embedding_model,
    source: { agentId: r.source_agent_id, taskId: r.source_task_id, workflowRunId: r.source_workflow_run_id },
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}
