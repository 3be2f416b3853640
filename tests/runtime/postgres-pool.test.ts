// DATABASE_POOL_MAX and DATABASE_POOL_TIMEOUT_MS bound the connections a subgraph process opens
// and how long a query waits for one. Counted on the server: distinct backend process ids.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Migration } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../runtime/db.ts';
import { loadConfig, commonSpec, subgraphSpec } from '../../runtime/config.ts';
import { DATABASE_URL, dropSchema, silentLogger } from '../support/databases.ts';

const skip = DATABASE_URL ? false : 'DATABASE_URL is not set';
const migrations: Record<string, Migration> = {};

async function open(poolMax: number | undefined, poolTimeoutMs?: number) {
  const schemaPrefix = `t${randomBytes(4).toString('hex')}_`;
  const database = await openDatabase<unknown>({
    name: 'pool',
    dataDir: mkdtempSync(join(tmpdir(), 'pool-')),
    databaseUrl: DATABASE_URL,
    schemaPrefix,
    migrations,
    logger: silentLogger,
    ...(poolMax === undefined ? {} : { poolMax }),
    ...(poolTimeoutMs === undefined ? {} : { poolTimeoutMs }),
  });
  const drop = async () => {
    await database.close();
    await dropSchema(`${schemaPrefix}pool`);
  };
  return { database, drop };
}

/** Backend pids seen by `n` concurrent queries that each hold their connection a moment. */
async function pidsOf(db: Awaited<ReturnType<typeof open>>['database'], n: number): Promise<Set<number>> {
  const rows = await Promise.all(Array.from({ length: n }, () => sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(0.05)`.execute(db.db)));
  return new Set(rows.map((r) => r.rows[0]!.pid));
}

describe('PostgreSQL pool limits', () => {
  it('reads DATABASE_POOL_MAX and DATABASE_POOL_TIMEOUT_MS, refusing nonsense', () => {
    const spec = { ...commonSpec, ...subgraphSpec };
    expect(loadConfig(spec, {})).toMatchObject({ DATABASE_POOL_MAX: 10, DATABASE_POOL_TIMEOUT_MS: 10_000 });
    expect(loadConfig(spec, { DATABASE_POOL_MAX: '3', DATABASE_POOL_TIMEOUT_MS: '250' })).toMatchObject({
      DATABASE_POOL_MAX: 3,
      DATABASE_POOL_TIMEOUT_MS: 250,
    });
    expect(() => loadConfig(spec, { DATABASE_POOL_MAX: '0' })).toThrow(/DATABASE_POOL_MAX/);
  });

  it.skipIf(skip)(`opens at most DATABASE_POOL_MAX connections${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const one = await open(1);
    const three = await open(3);
    try {
      expect((await pidsOf(one.database, 6)).size).toBe(1);
      const pids = await pidsOf(three.database, 12);
      expect(pids.size).toBeGreaterThan(1);
      expect(pids.size).toBeLessThanOrEqual(3);
    } finally {
      await one.drop();
      await three.drop();
    }
  });

  it.skipIf(skip)(`fails a query that waits longer than DATABASE_POOL_TIMEOUT_MS for a connection${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const t = await open(1, 200);
    try {
      const holder = sql`select pg_sleep(1.5)`.execute(t.database.db);
      const waiter = sql`select 1`.execute(t.database.db).then(
        () => 'ran',
        (err: Error) => err.message,
      );
      expect(await waiter).toMatch(/timeout/i);
      await holder;
      // The pool works again once the connection is free.
      await expect(sql`select 1 as one`.execute(t.database.db)).resolves.toMatchObject({ rows: [{ one: 1 }] });
    } finally {
      await t.drop();
    }
  });
});
