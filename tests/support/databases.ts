// Store tests run on every backend: SQLite always, PostgreSQL when DATABASE_URL is set (CI sets
// it). Each test database is private (a temp SQLite file, or a uniquely prefixed PostgreSQL
// schema) and removed afterwards, so test files can run in parallel.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Migration } from 'kysely';
import { openDatabase, type Database } from '../../runtime/db.ts';
import { createEventBus, type EventBus } from '../../runtime/events.ts';
import { createLogger, type Logger } from '../../runtime/logger.ts';

export type Backend = 'sqlite' | 'postgres';

export const DATABASE_URL = process.env.DATABASE_URL || undefined;
export const REDIS_URL = process.env.REDIS_URL || undefined;

/** Backends with the reason a backend is skipped, so the skip is visible in the test names. */
export const backends: { backend: Backend; skip: string | false }[] = [
  { backend: 'sqlite', skip: false },
  { backend: 'postgres', skip: DATABASE_URL ? false : 'DATABASE_URL is not set' },
];
if (!DATABASE_URL) console.warn('[tests] PostgreSQL store tests are skipped: DATABASE_URL is not set (CI sets it).');

export const silentLogger: Logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');

export interface TestDatabase<DB> {
  database: Database<DB>;
  bus: EventBus;
  logger: Logger;
  /** Closes the connections and deletes the data. */
  drop(): Promise<void>;
}

export async function openTestDatabase<DB>(backend: Backend, name: string, migrations: Record<string, Migration>): Promise<TestDatabase<DB>> {
  const bus = createEventBus({ channelPrefix: 'test', logger: silentLogger });
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), `store-${name}-`));
    const database = await openDatabase<DB>({ name, dataDir: dir, migrations, logger: silentLogger });
    return {
      database,
      bus,
      logger: silentLogger,
      async drop() {
        await database.close();
        await bus.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (!DATABASE_URL) throw new Error('DATABASE_URL is not set');
  const prefix = `t${randomBytes(4).toString('hex')}_`;
  const database = await openDatabase<DB>({ name, dataDir: '', databaseUrl: DATABASE_URL, schemaPrefix: prefix, migrations, logger: silentLogger });
  return {
    database,
    bus,
    logger: silentLogger,
    async drop() {
      await database.close();
      await bus.close();
      await dropSchema(`${prefix}${name}`);
    },
  };
}

export async function dropSchema(schema: string): Promise<void> {
  if (!DATABASE_URL) return;
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
