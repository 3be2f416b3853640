// `npx tsx bench/memory-store.ts [N]`: the memory store and its HNSW index in this process, no
// HTTP or GraphQL: store-level ingest (rememberBatch's transaction, batches of 100) and vector
// search latency once the index holds every vector. Wall clock and CPU time (the machine is shared).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../runtime/db.ts';
import { createEventBus } from '../runtime/events.ts';
import { createLogger } from '../runtime/logger.ts';
import { Outbox } from '../runtime/outbox.ts';
import { developmentIdentity } from '../runtime/identity.ts';
import { normaliseRemember, normaliseSearch } from '../subgraphs/memory/domain.ts';
import { migrations } from '../subgraphs/memory/migrations.ts';
import { MemoryStore, type MemoryDB } from '../subgraphs/memory/store.ts';
import { VectorIndex } from '../subgraphs/memory/store/vector-index.ts';
const N = Number(process.argv[2] ?? 10000);
const logger = createLogger('b', 'silent');
const database = await openDatabase<MemoryDB>({ name: 'memory', dataDir: mkdtempSync(join(tmpdir(), 'bs-')), migrations, logger });
const bus = createEventBus({ channelPrefix: 'b', logger });
const outbox = new Outbox({ database: database as Database<unknown>, bus, logger, channel: 'memory', retentionSeconds: 3600, relayIntervalMs: 60000 });
const index = new VectorIndex(database.db, outbox, logger, { connectivity: 16, expansionAdd: 64, expansionSearch: 64 });
const store = new MemoryStore(database, outbox, logger, Date.now, undefined, index);
let s = 42;
const rand = () => {
  s = (s * 1664525 + 1013904223) >>> 0;
  return s / 2 ** 32;
};
const centres = Array.from({ length: 32 }, () => Array.from({ length: 384 }, () => rand() - 0.5));
const near = () => (centres[Math.floor(rand() * 32)] as number[]).map((x) => x + (rand() - 0.5) * 0.3);
const who = developmentIdentity('memory', 't');
let t0 = performance.now();
const c0 = process.cpuUsage();
for (let i = 0; i < N; i += 100)
  await store.remember(
    't',
    Array.from({ length: 100 }, () =>
      normaliseRemember({ namespace: `shared/b/${Math.floor(rand() * 10)}`, text: 'agent task memory', vector: near() }, who, Date.now()),
    ),
  );
const c = process.cpuUsage(c0);
console.log(`store ingest ${(N / ((performance.now() - t0) / 1000)).toFixed(0)}/s wall, ${(N / ((c.user + c.system) / 1e6)).toFixed(0)}/CPU-s`);
t0 = performance.now();
await index.settled('t');
console.log(`settled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const lat: number[] = [];
const cpu: number[] = [];
for (let q = 0; q < 200; q++) {
  const req = normaliseSearch({ vector: near(), k: 10, mode: 'VECTOR' });
  const a = performance.now();
  const b = process.cpuUsage();
  await store.search('t', { prefixes: null, filter: req.filter }, req);
  lat.push(performance.now() - a);
  const d = process.cpuUsage(b);
  cpu.push((d.user + d.system) / 1000);
}
lat.sort((x, y) => x - y);
cpu.sort((x, y) => x - y);
console.log(`store vector search p50 ${lat[100]!.toFixed(2)} p99 ${lat[198]!.toFixed(2)} ms; CPU p50 ${cpu[100]!.toFixed(2)} p99 ${cpu[198]!.toFixed(2)}`);
index.close();
await outbox.stop();
await database.close();
await bus.close();
