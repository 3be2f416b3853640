// Exact nearest neighbours: every vector in scope is compared. The fallback of the vector index
// (a narrow filter, a metric the index was not built for) and the reference recall is measured
// against.
import type { Kysely } from 'kysely';
import type { Dialect } from '../../../runtime/db.ts';
import { compare, type SearchRequest } from '../domain.ts';
import type { VectorCandidate } from '../ranking.ts';
import { matches, tenantIds } from './filters.ts';
import type { Scope } from './rows.ts';
import type { MemoryDB } from './tables.ts';
import { decodeVector } from './vectors.ts';

/**
 * Parsed vectors by memory id and version, bounded: past the bound the oldest entries go (a
 * search then parses them again). 100,000 vectors of 384 dimensions are ~300 MB as Float64.
 */
export class VectorCache {
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

/**
 * Filters run in SQL first, so a filtered search loses no recall. Only ids and versions come
 * from SQL each time; the vectors themselves are parsed once per version and kept (a memory's
 * vector changes only with its version, so a replica never compares against a stale one).
 */
export async function exactNearest(
  dialect: Dialect,
  db: Kysely<MemoryDB>,
  cache: VectorCache,
  tenantId: string,
  scope: Scope,
  req: SearchRequest,
  limit: number,
  now: string,
): Promise<VectorCandidate[]> {
  const query = req.vector as number[];
  const rows = await db
    .selectFrom('memories')
    .select(['id', 'version'])
    .where('dimension', '=', query.length)
    .where((eb) => matches(dialect, eb, tenantId, scope, now))
    .execute();
  const missing = rows.filter((r) => cache.get(r.id)?.version !== Number(r.version)).map((r) => r.id);
  for (let i = 0; i < missing.length; i += 500) {
    const loaded = await db
      .selectFrom('memories')
      .select(['id', 'version', 'embedding'])
      .where(tenantIds(dialect, tenantId, missing.slice(i, i + 500)))
      .execute();
    for (const r of loaded) if (r.embedding !== null) cache.set(r.id, Number(r.version), decodeVector(r.embedding));
  }
  const best: VectorCandidate[] = [];
  for (const r of rows) {
    const cached = cache.get(r.id);
    if (!cached || cached.version !== Number(r.version)) continue;
    const { distance, similarity } = compare(req.metric, query, cached.vector);
    best.push({ id: r.id, distance, similarity });
  }
  best.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
  return best.slice(0, limit);
}
