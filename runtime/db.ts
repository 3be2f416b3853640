import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, SqliteDialect, sql, type Migration, type MigrationProvider, type Transaction } from 'kysely';
import { GroupCommit, type Work } from './group-commit.ts';
import type { Logger } from './logger.ts';
import { SchemaScopedPostgresDialect } from './postgres-introspector.ts';
import { withStatementCache } from './sqlite-statements.ts';
import { tracedDialect } from './sql-tracing.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface DatabaseOptions {
  /** The subgraph that owns the data: its SQLite file name and PostgreSQL schema. */
  name: string;
  dataDir: string;
  databaseUrl?: string | undefined;
  schemaPrefix?: string;
  migrations: Record<string, Migration>;
  logger: Logger;
  /** SQLite: most concurrent write transactions committed together (runtime/group-commit.ts); 1 turns grouping off. */
  groupCommitMax?: number;
  /** PostgreSQL: most connections this process opens (DATABASE_POOL_MAX); every replica has its own. */
  poolMax?: number;
  /** PostgreSQL: longest a query waits for a free connection before it fails (DATABASE_POOL_TIMEOUT_MS). */
  poolTimeoutMs?: number;
  /** SQLite: told the size of every commit group (metrics). */
  onCommitGroup?: (size: number) => void;
}

/** DATABASE_POOL_MAX's and DATABASE_POOL_TIMEOUT_MS's defaults. */
export const DEFAULT_POOL_MAX = 10;
export const DEFAULT_POOL_TIMEOUT_MS = 10_000;

/** Prefixes the schema name in the advisory lock key, so the key means nothing else in the database. */
const SETUP_LOCK_NAMESPACE = 'agent-platform-supergraph:schema-setup:';

/** SQLITE_GROUP_COMMIT_MAX's default. */
export const DEFAULT_GROUP_COMMIT_MAX = 64;

/** One subgraph's database: the same store code runs on either dialect. */
export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly dialect: Dialect;
  /** Where the data lives, for logs and the start banner. */
  readonly location: string;
  /**
   * Statements executed so far (lets tests prove a batch runs one query, not N) and write
   * transactions committed (on SQLite, concurrent writes share one).
   */
  readonly stats: { queries: number; commits: number };
  /**
   * Runs work in a write transaction and resolves once it committed. On SQLite, writes that
   * arrive together share one transaction and one COMMIT, each in its own savepoint
   * (runtime/group-commit.ts); PostgreSQL groups commits itself, so each write is its own
   * transaction from the pool there.
   */
  transaction<T>(work: Work<DB, T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** PostgreSQL: the pool's connections now (metrics); undefined on SQLite. */
  poolUse?(): { total: number; idle: number; waiting: number };
}

export type { Kysely, Transaction };

// pg returns int8 (COUNT, SUM) as strings to avoid precision loss; our counts fit in a double.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openDatabase<DB>(opts: DatabaseOptions): Promise<Database<DB>> {
  if (opts.databaseUrl) return openPostgres<DB>(opts, opts.databaseUrl);
  const { database, statements } = openSqlite<DB>(opts);
  await migrate(database.db, opts, undefined);
  statements.clear();
  return database;
}

function postgresSchema(opts: DatabaseOptions): string {
  return `${opts.schemaPrefix ?? ''}${opts.name}`;
}

/** The SQLite connections of this process, for closeSqliteNow(). */
const openSqliteConnections = new Set<BetterSqlite3.Database>();

/**
 * Closes every SQLite database of the process at once, synchronously: for a forced exit (a second
 * Ctrl+C). Committed writes are in the WAL already; closing checkpoints it into the database file
 * and removes the -wal and -shm files, so a forced stop leaves the folder as a normal one does. A
 * transaction still open is rolled back (it was never acknowledged).
 */
export function closeSqliteNow(): void {
  for (const conn of openSqliteConnections) {
    try {
      conn.close();
    } catch {
      // Already closing: nothing more to do for it.
    }
  }
  openSqliteConnections.clear();
}

function openSqlite<DB>(opts: DatabaseOptions): { database: Database<DB>; statements: { clear(): void } } {
  mkdirSync(opts.dataDir, { recursive: true });
  const file = resolve(opts.dataDir, `${opts.name}.sqlite`);
  const conn = new BetterSqlite3(file);
  openSqliteConnections.add(conn);
  // WAL lets readers run beside the writer; synchronous=FULL makes a committed transaction
  // survive power loss as well as a killed process: an acknowledged write is never lost.
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  conn.pragma('foreign_keys = ON');
  conn.pragma('busy_timeout = 5000');
  const stats = { queries: 0, commits: 0 };
  const statements = withStatementCache(conn);
  const db = new Kysely<DB>({ dialect: tracedDialect(new SqliteDialect({ database: statements }), 'sqlite'), log: countQueries(stats) });
  const writes = new GroupCommit(db, {
    maxGroupSize: opts.groupCommitMax ?? DEFAULT_GROUP_COMMIT_MAX,
    inTransaction: () => conn.inTransaction,
    onCommit: () => {
      stats.commits += 1;
    },
    logger: opts.logger,
    ...(opts.onCommitGroup ? { onGroup: opts.onCommitGroup } : {}),
  });
  const database: Database<DB> = {
    db,
    dialect: 'sqlite',
    location: file,
    stats,
    transaction: (work) => writes.run(work),
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      openSqliteConnections.delete(conn);
      if (conn.open) await db.destroy();
    },
  };
  return { database, statements };
}

async function openPostgres<DB>(opts: DatabaseOptions, url: string): Promise<Database<DB>> {
  const schema = postgresSchema(opts);
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid PostgreSQL schema name "${schema}"`);
  // Replicas starting together on an empty database would race on CREATE SCHEMA IF NOT EXISTS
  // (it is not atomic: the loser fails on pg_namespace's unique index) and on kysely's migration
  // tables. One session-level advisory lock per schema, held on a dedicated connection across
  // both, lets one replica set the schema up while the others wait; a crashed replica's session
  // ends and releases it.
  const bootstrap = new pg.Client({ connectionString: url });
  await bootstrap.connect();
  try {
    await bootstrap.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`${SETUP_LOCK_NAMESPACE}${schema}`]);
    // Each subgraph owns one schema; search_path on every pooled connection keeps the store's
    // SQL free of schema names, so it reads the same on SQLite.
    await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    const database = openPostgresPool<DB>(opts, url, schema);
    try {
      await migrate(database.db, opts, schema);
    } catch (err) {
      await database.close();
      throw err;
    }
    return database;
  } finally {
    // Ending the session releases the lock, on success and failure alike.
    await bootstrap.end();
  }
}

function openPostgresPool<DB>(opts: DatabaseOptions, url: string, schema: string): Database<DB> {
  // Bounded both ways: replicas × DATABASE_POOL_MAX must stay under the server's max_connections,
  // and a request that cannot get a connection fails after a while instead of queueing forever.
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolMax ?? DEFAULT_POOL_MAX,
    connectionTimeoutMillis: opts.poolTimeoutMs ?? DEFAULT_POOL_TIMEOUT_MS,
    options: `-c search_path="${schema}"`,
  });
  pool.on('error', (err) => opts.logger.error({ err }, 'idle PostgreSQL client error'));
  const stats = { queries: 0, commits: 0 };
  const db = new Kysely<DB>({ dialect: tracedDialect(new SchemaScopedPostgresDialect({ pool }, schema), 'postgresql'), log: countQueries(stats) });
  const safeUrl = new URL(url);
  safeUrl.password = '';
  return {
    db,
    dialect: 'postgres',
    location: `${safeUrl.toString()} schema ${schema}`,
    stats,
    poolUse: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async transaction(work) {
      const value = await db.transaction().execute(work);
      stats.commits += 1;
      return value;
    },
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
    },
  };
}

function countQueries(stats: { queries: number }) {
  return () => {
    stats.queries += 1;
  };
}

async function migrate<DB>(db: Kysely<DB>, opts: DatabaseOptions, schema: string | undefined): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => opts.migrations };
  // Without migrationTableSchema, kysely looks for its migration tables in every PostgreSQL
  // schema: another subgraph's (or test's) schema in the same database would make it skip
  // creating them in this one, and migrating then fails.
  const migrator = new Migrator({ db, provider, ...(schema ? { migrationTableSchema: schema } : {}) });
  const { error, results } = await migrator.migrateToLatest();
  for (const r of results ?? []) {
    if (r.status === 'Success') opts.logger.info({ migration: r.migrationName }, 'migration applied');
    if (r.status === 'Error') opts.logger.error({ migration: r.migrationName }, 'migration failed');
  }
  if (error) throw error instanceof Error ? error : new Error(String(error));
}

/** Timestamps are stored as ISO-8601 UTC text on both dialects, so they compare as strings. */
export function nowIso(clock: () => number = Date.now): string {
  return new Date(clock()).toISOString();
}
