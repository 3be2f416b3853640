// Full-text: SQLite keeps each memory's text in an FTS5 table (bm25), PostgreSQL in a generated
// tsvector column with a GIN index (ts_rank_cd).
import { sql, type Kysely, type SqlBool, type Transaction } from 'kysely';
import type { Dialect } from '../../../runtime/db.ts';
import { queryTerms } from '../domain.ts';
import type { LexicalCandidate } from '../ranking.ts';
import { matches, type Eb } from './filters.ts';
import type { Scope } from './rows.ts';
import type { MemoryDB } from './tables.ts';

/** SQLite keeps the text in its FTS5 table too; PostgreSQL's tsvector column is generated. */
export async function indexText(dialect: Dialect, trx: Transaction<MemoryDB>, row: { id: string; tenantId: string; text: string }): Promise<void> {
  if (dialect !== 'sqlite') return;
  await sql`delete from memories_fts where memory_id = ${row.id}`.execute(trx);
  await sql`insert into memories_fts (rowid, text, memory_id, tenant_id) values ((select rowid from memories where id = ${row.id}), ${row.text}, ${row.id}, ${row.tenantId})`.execute(
    trx,
  );
}

/** New memories' text, one statement for the whole batch (none of them can be indexed yet). */
export async function indexNewTexts(dialect: Dialect, trx: Transaction<MemoryDB>, ids: string[]): Promise<void> {
  if (dialect !== 'sqlite' || ids.length === 0) return;
  await sql`insert into memories_fts (rowid, text, memory_id, tenant_id) select rowid, text, id, tenant_id from memories where id in (${sql.join(ids)})`.execute(
    trx,
  );
}

export async function unindexText(dialect: Dialect, trx: Transaction<MemoryDB>, ids: string[]): Promise<void> {
  if (dialect !== 'sqlite' || ids.length === 0) return;
  // By rowid (the memory's own): FTS5 finds those without scanning.
  await sql`delete from memories_fts where rowid in (select rowid from memories where id in (${sql.join(ids)}))`.execute(trx);
}

/** The `limit` best full-text matches in scope, best first. */
export async function lexicalSearch(
  dialect: Dialect,
  db: Kysely<MemoryDB>,
  tenantId: string,
  scope: Scope,
  text: string,
  limit: number,
  now: string,
): Promise<LexicalCandidate[]> {
  const terms = queryTerms(text);
  if (terms.length === 0) return [];
  if (dialect === 'sqlite') {
    // Quoted terms joined with OR: the user's words, never FTS5 query syntax; bm25 ranks a
    // memory with more (and rarer) of them first.
    const match = terms.map((t) => `"${t}"`).join(' OR ');
    const rows = await db
      .selectFrom('memories_fts')
      .innerJoin('memories', 'memories.id', 'memories_fts.memory_id')
      .select(['memories.id as id', 'memories_fts.rank as rank'])
      .where(sql<SqlBool>`memories_fts match ${match}`)
      .where('memories_fts.tenant_id', '=', tenantId)
      .where((eb) => matches(dialect, eb as unknown as Eb, tenantId, scope, now))
      .orderBy('memories_fts.rank')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, score: -Number(r.rank) }));
  }
  const query = terms.join(' | ');
  const rows = await db
    .selectFrom('memories')
    .select(['id', sql<number>`ts_rank_cd(search_vector, to_tsquery('english', ${query}))`.as('score')])
    .where(sql<SqlBool>`search_vector @@ to_tsquery('english', ${query})`)
    .where((eb) => matches(dialect, eb, tenantId, scope, now))
    .orderBy('score', 'desc')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, score: Number(r.score) }));
}
