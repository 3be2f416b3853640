// The vector index: an in-process HNSW graph (usearch) per tenant and metric, in every replica,
// fed from the store and the outbox's events. Why usearch: README "Vector search".
//
// - Loaded from the memories table (in the background, at start or on a tenant's first search);
//   until then a search scans exactly (store/exact-scan.ts).
// - Kept fresh by the tenant's events: before each search the index reads what committed after
//   its watermark (one indexed read when nothing did) and reloads those memories' vectors, so a
//   replica sees what another wrote, updated or forgot. A watermark the outbox pruned past
//   reloads the tenant.
// - A new vector is searchable at once: it waits in `pending`, compared exactly, until the
//   background indexer adds it to the graph in small slices (each add blocks the event loop).
// - The graph proposes candidates, the caller's SQL keeps those in scope (namespace, filters,
//   expiry), and the exact distance is recomputed from the kept vector. A narrow scope asks the
//   graph for more; past `maxCandidates` the caller scans exactly instead.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { Index, MetricKind, ScalarKind } from 'usearch';
import type { Logger } from '../../../runtime/logger.ts';
import type { EventLog } from '../../../runtime/outbox.ts';
import { compare, MemoryForgotten, MemoryRemembered, MemoryUpdated, type VectorMetric } from '../domain.ts';
import type { VectorCandidate } from '../ranking.ts';
import type { MemoryDB } from './tables.ts';
import { decodeVector } from './vectors.ts';

export interface VectorIndexOptions {
  /** HNSW links per node (M). */
  connectivity: number;
  /** Candidate list while inserting (efConstruction). */
  expansionAdd: number;
  /** Candidate list while searching (ef). */
  expansionSearch: number;
  /** Vectors the background indexer adds between two turns of the event loop. */
  sliceSize?: number;
  /** The most candidates a filtered search asks the graph for before the caller scans exactly. */
  maxCandidates?: number;
}

/** Which of `ids` are in the search's scope, with their current version. */
export type Accept = (ids: string[]) => Promise<Map<string, number>>;

interface Stored {
  version: number;
  vector: Float32Array;
}

const memoryEvents = new Set([MemoryRemembered, MemoryUpdated, MemoryForgotten]);
const usearchMetric: Record<VectorMetric, MetricKind> = { COSINE: MetricKind.Cos, DOT: MetricKind.IP, EUCLIDEAN: MetricKind.L2sq };

/** One HNSW graph: one tenant's vectors under one metric. */
class Space {
  readonly index: Index;
  private readonly keyOf = new Map<string, bigint>();
  private readonly idOf = new Map<bigint, string>();
  /** Ids whose current vector is not in the graph yet. */
  readonly pending = new Set<string>();
  private nextKey = 1n;
  indexing = false;

  constructor(
    readonly metric: VectorMetric,
    dimension: number,
    options: VectorIndexOptions,
  ) {
    this.index = new Index({
      dimensions: dimension,
      metric: usearchMetric[metric],
      quantization: ScalarKind.F32,
      connectivity: options.connectivity,
      expansion_add: options.expansionAdd,
      expansion_search: options.expansionSearch,
      multi: false,
    });
  }

  get size(): number {
    return this.keyOf.size + this.pending.size;
  }

  put(id: string): void {
    this.drop(id);
    this.pending.add(id);
  }

  drop(id: string): void {
    this.pending.delete(id);
    const key = this.keyOf.get(id);
    if (key === undefined) return;
    this.index.remove(key);
    this.keyOf.delete(id);
    this.idOf.delete(key);
  }

  /** Moves up to `n` pending vectors into the graph (a new key each time: a key is never reused). */
  indexSome(vectors: Map<string, Stored>, n: number): void {
    const ids: string[] = [];
    for (const id of this.pending) {
      if (ids.length === n) break;
      ids.push(id);
    }
    const first = ids[0];
    if (first === undefined) return;
    const dimension = this.index.dimensions();
    const flat = new Float32Array(ids.length * dimension);
    const keys = new BigUint64Array(ids.length);
    ids.forEach((id, i) => {
      this.pending.delete(id);
      const stored = vectors.get(id);
      if (!stored) return;
      flat.set(stored.vector, i * dimension);
      keys[i] = this.nextKey;
      this.keyOf.set(id, this.nextKey);
      this.idOf.set(this.nextKey, id);
      this.nextKey += 1n;
    });
    const used = ids.filter((id) => this.keyOf.has(id)).length;
    if (used === ids.length) this.index.add(keys, flat, 0);
    else
      for (let i = 0; i < ids.length; i++) {
        const key = keys[i] as bigint;
        if (key !== 0n) this.index.add(key, flat.subarray(i * dimension, (i + 1) * dimension), 1);
      }
  }

  /** The graph's `want` nearest plus every pending vector, exactly scored, nearest first. */
  candidates(query: Float32Array, want: number, vectors: Map<string, Stored>): { hits: VectorCandidate[]; exhausted: boolean } {
    const hits: VectorCandidate[] = [];
    const graphSize = this.keyOf.size;
    let exhausted = true;
    if (graphSize > 0) {
      const found = this.index.search(query, Math.min(want, graphSize), 1);
      exhausted = found.keys.length < want;
      for (const key of found.keys) {
        const id = this.idOf.get(key);
        const stored = id === undefined ? undefined : vectors.get(id);
        if (id !== undefined && stored) hits.push({ id, ...compare(this.metric, query, stored.vector) });
      }
    }
    for (const id of this.pending) {
      const stored = vectors.get(id);
      if (stored) hits.push({ id, ...compare(this.metric, query, stored.vector) });
    }
    hits.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
    return { hits, exhausted };
  }
}

/** One tenant's vectors (shared by its spaces) and how far its events were applied. */
class Tenant {
  readonly vectors = new Map<string, Stored>();
  readonly spaces = new Map<VectorMetric, Space>();
  watermark = 0;
  loaded = false;
  loading: Promise<void> | null = null;
  syncing: Promise<void> | null = null;
  constructor(readonly id: string) {}
}

export interface VectorIndexStatus {
  vectors: number;
  indexed: number;
  pending: number;
  loaded: boolean;
}

export class VectorIndex {
  private readonly tenants = new Map<string, Tenant>();
  private readonly sliceSize: number;
  private readonly maxCandidates: number;
  private closed = false;

  constructor(
    private readonly db: Kysely<MemoryDB>,
    private readonly log: EventLog,
    private readonly logger: Logger,
    private readonly options: VectorIndexOptions,
  ) {
    this.sliceSize = options.sliceSize ?? 64;
    this.maxCandidates = options.maxCandidates ?? 4096;
  }

  /** Starts loading every tenant that has vectors (at start: the first searches find it warm). */
  async warm(): Promise<void> {
    const spaces = await this.db.selectFrom('memory_vector_spaces').select('tenant_id').execute();
    for (const s of spaces) void this.load(this.tenant(s.tenant_id));
  }

  /** Loads the tenant now (a test, a benchmark: searches use the index from here on). */
  async prepare(tenantId: string): Promise<void> {
    const t = this.tenant(tenantId);
    if (!t.loaded) await this.load(t);
  }

  /** Resolves once every vector of the tenant is in its graphs (benchmarks measure the graph, not the pending list). */
  async settled(tenantId: string): Promise<void> {
    await this.prepare(tenantId);
    const t = this.tenant(tenantId);
    await this.sync(t);
    while ([...t.spaces.values()].some((s) => s.pending.size > 0)) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  close(): void {
    this.closed = true;
  }

  /** Whether the tenant's cosine graph holds every vector (benchmarks wait for it). */
  status(tenantId: string): VectorIndexStatus {
    const t = this.tenants.get(tenantId);
    const space = t?.spaces.get('COSINE');
    return {
      vectors: t?.vectors.size ?? 0,
      indexed: space ? space.size - space.pending.size : 0,
      pending: space?.pending.size ?? 0,
      loaded: t?.loaded ?? false,
    };
  }

  /**
   * The `limit` nearest vectors that `accept` keeps, nearest first; null while the tenant loads
   * or when the scope is too narrow for the graph (the caller then scans exactly).
   */
  async nearest(tenantId: string, metric: VectorMetric, query: number[], limit: number, accept: Accept): Promise<VectorCandidate[] | null> {
    const t = this.tenant(tenantId);
    if (!t.loaded) {
      void this.load(t);
      return null;
    }
    await this.sync(t);
    if (!t.loaded) return null;
    const space = this.space(t, metric, query.length);
    const q = Float32Array.from(query);
    let want = Math.max(limit * 4, 64);
    for (;;) {
      const { hits, exhausted } = space.candidates(q, want, t.vectors);
      const inScope = await accept(hits.map((h) => h.id));
      const kept = hits.filter((h) => inScope.get(h.id) === t.vectors.get(h.id)?.version);
      if (kept.length >= limit || exhausted) return kept.slice(0, limit);
      if (want >= this.maxCandidates || want >= space.size) return null;
      want = Math.min(this.maxCandidates, want * 8);
    }
  }

  private tenant(tenantId: string): Tenant {
    let t = this.tenants.get(tenantId);
    if (!t) {
      t = new Tenant(tenantId);
      this.tenants.set(tenantId, t);
    }
    return t;
  }

  private space(t: Tenant, metric: VectorMetric, dimension: number): Space {
    let space = t.spaces.get(metric);
    if (!space || space.index.dimensions() !== dimension) {
      space = new Space(metric, dimension, this.options);
      for (const id of t.vectors.keys()) space.pending.add(id);
      t.spaces.set(metric, space);
      this.scheduleIndexing(t, space);
    }
    return space;
  }

  /** Reads every vector of the tenant; the watermark is taken first, so what commits meanwhile is replayed. */
  private load(t: Tenant): Promise<void> {
    t.loading ??= (async () => {
      const started = performance.now();
      const head = await this.log.head(t.id);
      t.vectors.clear();
      let after = '';
      for (;;) {
        const rows = await this.db
          .selectFrom('memories')
          .select(['id', 'version', 'embedding'])
          .where('tenant_id', '=', t.id)
          .where('embedding', 'is not', null)
          .where('id', '>', after)
          .orderBy('id')
          .limit(1000)
          .execute();
        for (const r of rows) t.vectors.set(r.id, { version: Number(r.version), vector: Float32Array.from(decodeVector(r.embedding as Uint8Array)) });
        const last = rows.at(-1);
        if (!last || rows.length < 1000) break;
        after = last.id;
      }
      t.watermark = head;
      t.spaces.clear();
      t.loaded = true;
      const first = t.vectors.values().next().value;
      if (first) this.space(t, 'COSINE', first.vector.length);
      this.logger.info({ tenantId: t.id, vectors: t.vectors.size, ms: Math.round(performance.now() - started) }, 'vector index loaded');
    })()
      .catch((err: unknown) => this.logger.error({ err, tenantId: t.id }, 'vector index load failed; searches scan exactly'))
      .finally(() => {
        t.loading = null;
      });
    return t.loading;
  }

  /** Applies what committed after the watermark; one sync at a time per tenant. */
  sync(tenantOrId: Tenant | string): Promise<void> {
    const t = typeof tenantOrId === 'string' ? this.tenant(tenantOrId) : tenantOrId;
    if (!t.loaded) return Promise.resolve();
    t.syncing ??= this.applyEvents(t).finally(() => {
      t.syncing = null;
    });
    return t.syncing;
  }

  private async applyEvents(t: Tenant): Promise<void> {
    const head = await this.log.head(t.id);
    while (t.watermark < head) {
      const events = await this.log.read(t.id, { after: t.watermark, limit: 2000 });
      const first = events[0];
      if (!first || first.sequence !== t.watermark + 1) {
        // Pruned past the watermark: what changed is unknown, so everything is read again.
        t.loaded = false;
        void this.load(t);
        return;
      }
      const ids = [...new Set(events.filter((e) => memoryEvents.has(e.type)).map((e) => e.subjectId))];
      for (let i = 0; i < ids.length; i += 500) await this.reload(t, ids.slice(i, i + 500));
      t.watermark = (events.at(-1) as { sequence: number }).sequence;
    }
  }

  /** Reads these memories' current vectors (a memory gone or without one leaves the index). */
  private async reload(t: Tenant, ids: string[]): Promise<void> {
    // By id alone (the primary key; see filters.ts tenantIds), the tenant checked here.
    const rows = await this.db.selectFrom('memories').select(['id', 'tenant_id', 'version', 'embedding']).where('id', 'in', ids).execute();
    const found = new Map(rows.filter((r) => r.tenant_id === t.id).map((r) => [r.id, r]));
    for (const id of ids) {
      const r = found.get(id);
      const current = t.vectors.get(id);
      if (!r || r.embedding === null) {
        if (current) {
          t.vectors.delete(id);
          for (const space of t.spaces.values()) space.drop(id);
        }
        continue;
      }
      if (current?.version === Number(r.version)) continue;
      t.vectors.set(id, { version: Number(r.version), vector: Float32Array.from(decodeVector(r.embedding)) });
      for (const space of t.spaces.values()) {
        space.put(id);
        this.scheduleIndexing(t, space);
      }
    }
  }

  /** Adds pending vectors to the graph a slice at a time, yielding to the event loop between slices. */
  private scheduleIndexing(t: Tenant, space: Space): void {
    if (space.indexing) return;
    space.indexing = true;
    void (async () => {
      try {
        while (!this.closed && space.pending.size > 0 && t.spaces.get(space.metric) === space) {
          space.indexSome(t.vectors, this.sliceSize);
          await yieldToLoop();
        }
      } catch (err) {
        this.logger.error({ err, tenantId: t.id }, 'vector indexing failed; pending vectors are still compared exactly');
      } finally {
        space.indexing = false;
      }
    })();
  }
}
