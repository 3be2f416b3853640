// All SQL of the memory subgraph. Every statement is scoped to a tenant; writes run in one
// transaction with their outbox events. Rows read the same on SQLite and PostgreSQL; the
// full-text index and the JSON operators of metadata filters are each engine's own (store/).
import type { Kysely, Transaction } from 'kysely';
import type { Database, Dialect } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { Idempotency, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection } from '../../runtime/pagination.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  dimensionMismatch,
  MemoryForgotten,
  MemoryRemembered,
  MemoryUpdated,
  type MemoryDraft,
  type MemoryEventPayload,
  type MemoryPatch,
  type SearchRequest,
} from './domain.ts';
import { rank, type VectorCandidate } from './ranking.ts';
import { exactNearest, VectorCache } from './store/exact-scan.ts';
import { matches, tenantIds, unexpired } from './store/filters.ts';
import { indexNewTexts, indexText, lexicalSearch, unindexText } from './store/lexical.ts';
import { decode, type MemoryRow, type MemoryVersionRow, type PageQuery, type Scope, type SearchHit } from './store/rows.ts';
import type { MemoryDB } from './store/tables.ts';
import type { VectorIndex, VectorIndexStatus } from './store/vector-index.ts';
import { encodeVector } from './store/vectors.ts';

export type { EntityRef, MemoryEventRow, MemoryRow, MemoryVersionRow, PageQuery, Scope, SearchHit } from './store/rows.ts';
export type { MemoryDB } from './store/tables.ts';

type Db = Kysely<MemoryDB> | Transaction<MemoryDB>;

/** Candidates each list contributes to a fused search: enough that fusion can reorder the top k. */
const fusionDepth = (k: number) => Math.min(200, Math.max(50, k * 4));

export class MemoryStore {
  private readonly vectors = new VectorCache(100_000);

  constructor(
    private readonly database: Database<MemoryDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
    /** The ANN index; without it every semantic search scans exactly. */
    private readonly vectorIndex: VectorIndex | null = null,
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
      .where((eb) => matches(this.database.dialect, eb, tenantId, scope, now));
    const after = page.after;
    if (after) {
      query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await db
      .selectFrom('memories')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where((eb) => matches(this.database.dialect, eb, tenantId, scope, now))
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
            const rows =
              ids.length === 0
                ? []
                : await trx
                    .selectFrom('memories')
                    .selectAll()
                    .where(tenantIds(this.database.dialect, tenantId, ids))
                    .execute();
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
    const values = drafts.map((d) => ({
      id: newId(),
      tenant_id: tenantId,
      namespace: d.namespace,
      kind: d.kind,
      text: d.text,
      metadata: d.metadata,
      importance: d.importance,
      embedding: d.vector === null ? null : encodeVector(d.vector),
      dimension: d.vector?.length ?? null,
      source_agent_id: d.source.agentId,
      source_task_id: d.source.taskId,
      source_workflow_run_id: d.source.workflowRunId,
      expires_at: d.expiresAt,
      embedding_model: d.embeddingModel,
      created_at: now,
      updated_at: now,
      version: 1,
    }));
    // Not `returning`: the rows are what was sent, and reading 100 vectors back as JSON costs more than the insert.
    await trx.insertInto('memories').values(values).execute();
    const decoded = values.map((v, i) => ({ ...decode({ ...v, embedding: null }), vector: drafts[i]?.vector ?? null }));
    await indexNewTexts(
      this.database.dialect,
      trx,
      decoded.map((r) => r.id),
    );
    for (const row of decoded) emitFor(emit, MemoryRemembered, row);
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
            ? { embedding: patch.vector === null ? null : encodeVector(patch.vector), dimension: patch.vector?.length ?? null }
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
      if (patch.text !== undefined) await indexText(this.database.dialect, trx, row);
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
        .where((eb) => matches(this.database.dialect, eb, tenantId, scope, null))
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
      await unindexText(this.database.dialect, trx, ids);
      await trx.deleteFrom('memory_versions').where('tenant_id', '=', tenantId).where('memory_id', 'in', ids).execute();
      await trx
        .deleteFrom('memories')
        .where(tenantIds(this.database.dialect, tenantId, ids))
        .execute();
    }
    for (const row of rows) emitFor(emit, MemoryForgotten, row, now);
  }

  /** The replica's vector index for the tenant (loading it when it was not). */
  async vectorIndexStatus(tenantId: string): Promise<VectorIndexStatus & { engine: 'hnsw' | 'exact' }> {
    if (!this.vectorIndex) {
      const { n } = await this.database.db
        .selectFrom('memories')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('tenant_id', '=', tenantId)
        .where('embedding', 'is not', null)
        .executeTakeFirstOrThrow();
      return { engine: 'exact', loaded: true, vectors: Number(n), indexed: 0, pending: 0 };
    }
    const status = this.vectorIndex.status(tenantId);
    if (!status.loaded) void this.vectorIndex.prepare(tenantId);
    else await this.vectorIndex.sync(tenantId);
    return { engine: 'hnsw', ...this.vectorIndex.status(tenantId) };
  }

  // --- Search ----------------------------------------------------------------------------------

  async search(tenantId: string, scope: Scope, req: SearchRequest): Promise<SearchHit[]> {
    const now = this.clock();
    const depth = req.mode === 'HYBRID' || req.recencyWeight > 0 || req.importanceWeight > 0 ? fusionDepth(req.k) : req.k;
    const lexical =
      req.text === null
        ? []
        : await lexicalSearch(
            this.database.dialect,
            this.database.db,
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
    const rows = await this.database.db
      .selectFrom('memories')
      .selectAll()
      .where(tenantIds(this.database.dialect, tenantId, ids))
      .execute();
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

  /** The `limit` nearest vectors in scope (the tenant's one dimension), nearest first. */
  private async nearest(tenantId: string, scope: Scope, req: SearchRequest, limit: number, now: string): Promise<VectorCandidate[]> {
    const query = req.vector as number[];
    const expected = await this.dimensionOf(this.database.db, tenantId);
    if (expected === null) return [];
    if (expected !== query.length) throw dimensionMismatch(expected, query.length, 'input.vector');
    const { dialect, db } = this.database;
    if (this.vectorIndex) {
      const found = await this.vectorIndex.nearest(tenantId, req.metric, query, limit, async (ids) => {
        const inScope = new Map<string, number>();
        for (let i = 0; i < ids.length; i += 1000) {
          const rows = await db
            .selectFrom('memories')
            .select(['id', 'version'])
            .where((eb) => matches(dialect, eb, tenantId, scope, now, ids.slice(i, i + 1000)))
            .execute();
          for (const r of rows) inScope.set(r.id, Number(r.version));
        }
        return inScope;
      });
      if (found) return found;
    }
    return exactNearest(dialect, db, this.vectors, tenantId, scope, req, limit, now);
  }
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
