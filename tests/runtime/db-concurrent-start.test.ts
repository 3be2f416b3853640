// Replicas of one subgraph that start together against an empty PostgreSQL database must not
// race each other creating its schema and migrating it (runtime/db.ts serializes them with an
// advisory lock): every replica starts, and each migration runs exactly once. Real subgraph
// processes (their start-up times spread them out, so they seldom collided even without the
// lock), and rounds of in-process opens, which lost the race every run without it.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sql, type Migration } from 'kysely';
import { openDatabase } from '../../runtime/db.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema, silentLogger } from '../support/databases.ts';
import { getFreePort, manageProcesses, startProcess } from '../support/processes.ts';

manageProcesses();

const skip = DATABASE_URL ? false : 'DATABASE_URL is not set';
if (skip) console.warn(`[tests] concurrent PostgreSQL start-up is skipped: ${skip} (CI sets it).`);

const REPLICAS = 4;
// The race does not lose every time: several fresh schemas make the old code fail reliably.
const ROUNDS = 5;

describe('PostgreSQL: replicas starting at once on an empty database', () => {
  it.skipIf(skip)(
    `four agents subgraph processes on one fresh schema all become ready, each migration applied by one of them${skip ? ` (skipped: ${skip})` : ''}`,
    async () => {
      const prefix = `t${randomBytes(4).toString('hex')}_`;
      const ports = [await getFreePort(), await getFreePort(), await getFreePort(), await getFreePort()];
      const started = await Promise.allSettled(
        ports.map((port, i) =>
          startProcess({
            name: `agents-${i}`,
            args: ['scripts/subgraph.ts', 'agents'],
            port,
            env: {
              ...TEST_SECURITY_ENV,
              DATABASE_URL,
              DATABASE_SCHEMA_PREFIX: prefix,
              EVENT_CHANNEL_PREFIX: prefix,
              AGENTS_PORT: String(port),
              LOG_LEVEL: 'info',
              REDIS_URL: '',
            },
          }),
        ),
      );
      try {
        expect(started.map((s) => (s.status === 'fulfilled' ? 'ready' : String(s.reason)))).toEqual(ports.map(() => 'ready'));
        const applied = started
          .flatMap((s) => (s.status === 'fulfilled' ? s.value.jsonLogs() : []))
          .filter((line) => line.msg === 'migration applied')
          .map((line) => String(line.migration));
        expect(applied.length).toBeGreaterThan(0);
        expect(applied.toSorted()).toEqual(Object.keys(agents.migrations).toSorted());
      } finally {
        await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
        await dropSchema(`${prefix}agents`);
      }
    },
  );

  it.skipIf(skip)(`all start, and the schema is migrated once${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    for (let round = 0; round < ROUNDS; round++) await startReplicasOnFreshSchema();
  });
});

async function startReplicasOnFreshSchema(): Promise<void> {
  const url = DATABASE_URL as string;
  const prefix = `t${randomBytes(4).toString('hex')}_`;
  let applied = 0;
  const migrations: Record<string, Migration> = {
    '0001_notes': {
      async up(db) {
        applied += 1;
        // Not IF NOT EXISTS: a second run of this migration fails, as real ones would.
        await db.schema
          .createTable('notes')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .execute();
      },
    },
    '0002_tags': {
      async up(db) {
        applied += 1;
        await db.schema
          .createTable('tags')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .execute();
      },
    },
  };
  const opens = Array.from({ length: REPLICAS }, () =>
    openDatabase<{ notes: { id: string } }>({
      name: 'fleet',
      dataDir: '',
      databaseUrl: url,
      schemaPrefix: prefix,
      migrations,
      logger: silentLogger,
      poolMax: 2,
    }),
  );
  const results = await Promise.allSettled(opens);
  try {
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    expect(applied).toBe(2);
    const first = results[0];
    if (first?.status !== 'fulfilled') throw new Error('unreachable');
    const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(first.value.db);
    expect(rows.rows.map((r) => r.name)).toEqual(['0001_notes', '0002_tags']);
  } finally {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
    await dropSchema(`${prefix}fleet`);
  }
}
