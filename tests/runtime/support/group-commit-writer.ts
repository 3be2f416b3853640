// Child process of group-commit-durability.test.ts: writes rows in waves of concurrent writes
// (so they are grouped) and prints each row id the moment its write is acknowledged, until killed.
import { openDatabase } from '../../../runtime/db.ts';
import { createLogger } from '../../../runtime/logger.ts';

interface DB {
  acked: { id: string; wave: number };
}

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: group-commit-writer.ts <dataDir>');
const database = await openDatabase<DB>({
  name: 'durable',
  dataDir,
  logger: createLogger('writer', 'silent'),
  migrations: {
    '0001': {
      async up(db) {
        await db.schema
          .createTable('acked')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('wave', 'integer', (c) => c.notNull())
          .execute();
      },
    },
  },
});
for (let wave = 0; ; wave++) {
  const commitsBefore = database.stats.commits;
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const id = `w${wave}-${i}`;
      await database.transaction((trx) => trx.insertInto('acked').values({ id, wave }).execute());
      // stdout to a pipe is synchronous on Linux: once written, the parent may kill at any time.
      process.stdout.write(`ack ${id}\n`);
    }),
  );
  process.stdout.write(`wave ${wave} writes 20 commits ${database.stats.commits - commitsBefore}\n`);
}
