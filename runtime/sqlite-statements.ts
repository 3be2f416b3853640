import type BetterSqlite3 from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/** How many distinct statements stay compiled; a store uses a few dozen. */
export const STATEMENT_CACHE_SIZE = 500;

/**
 * The connection as kysely's SqliteDialect sees it, made cheaper in the two places a subgraph's
 * profile showed (bench/README.md):
 *
 * - compiled statements are kept by SQL text: kysely calls prepare() for every query it runs, and
 *   compiling the same SQL again each time was 12-15 % of a subgraph's CPU on a lookup or a
 *   heartbeat. A query builder chain gives the same text every time (values are bound
 *   parameters), so each of a store's statements is compiled once. SQLite recompiles a cached
 *   statement by itself when the schema changes under it.
 * - rows are read as arrays and turned into objects here: better-sqlite3 builds each row object
 *   through one V8 API call per column, which made a 30-column row cost about twice as much.
 *   Same objects: one property per column, in column order, the last of duplicate names winning.
 */
export function withStatementCache(conn: BetterSqlite3.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase & { clear(): void } {
  const cache = new Map<string, CachedStatement>();
  return {
    close: () => conn.close(),
    /** Forgets every statement: after migrations, a cached `select *` would name old columns. */
    clear: () => cache.clear(),
    prepare(sql: string): SqliteStatement {
      const cached = cache.get(sql);
      // A statement that is still iterating (a streamed query) cannot run a second time meanwhile.
      if (cached && !cached.busy) {
        // Least recently used first: Map keeps insertion order, so re-inserting marks it fresh.
        cache.delete(sql);
        cache.set(sql, cached);
        return cached;
      }
      const statement = new CachedStatement(conn.prepare(sql));
      if (!cached) {
        cache.set(sql, statement);
        if (cache.size > size) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
      }
      return statement;
    },
  };
}

type Row = Record<string, unknown>;

class CachedStatement implements SqliteStatement {
  readonly reader: boolean;
  private columns: readonly string[];

  constructor(private readonly statement: BetterSqlite3.Statement) {
    this.reader = statement.reader;
    this.columns = statement.reader ? statement.columns().map((c) => c.name) : [];
    if (statement.reader) statement.raw(true);
  }

  get busy(): boolean {
    return this.statement.busy;
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    const rows = this.statement.all(parameters) as unknown[][];
    // SQLite recompiled the statement after a schema change: read the names again.
    if (rows.length > 0 && (rows[0] as unknown[]).length !== this.columns.length) this.columns = this.statement.columns().map((c) => c.name);
    const out = new Array<Row>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.toObject(rows[i] as unknown[]);
    return out;
  }

  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    return this.statement.run(parameters);
  }

  *iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    for (const values of this.statement.iterate(parameters) as IterableIterator<unknown[]>) yield this.toObject(values);
  }

  private toObject(values: unknown[]): Row {
    const row: Row = {};
    const columns = this.columns;
    for (let c = 0; c < columns.length; c++) row[columns[c] as string] = values[c];
    return row;
  }
}
