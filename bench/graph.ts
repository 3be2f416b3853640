// `npm run bench:graph`: the knowledge graph of the memory subgraph on SQLite in this process,
// spoken to over HTTP as the gateway does (signed identity). The graph is generated straight into
// the subgraph's SQLite file in one transaction (N entities, each with `degree` DEPENDS_ON
// relations to random others, weights 1 to 10), then 2-hop expansions and shortest paths
// (unweighted and weighted) between random entities are timed at the subgraph. Prints a Markdown
// table (bench/README.md, "Knowledge graph").
//
//   npm run bench:graph                                   100,000 entities, 500,000 relations
//   npm run bench:graph -- --entities 10000 --degree 5 --queries 200
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES } from '../runtime/identity.ts';
import { startSubgraph } from '../runtime/subgraph.ts';
import { memory } from '../subgraphs/memory/index.ts';

interface Options {
  entities: number;
  degree: number;
  queries: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { entities: 100_000, degree: 5, queries: 200 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (!(name === 'entities' || name === 'degree' || name === 'queries') || !Number.isInteger(value) || value < 1) {
      throw new Error('usage: npm run bench:graph -- [--entities 100000] [--degree 5] [--queries 200]');
    }
    options[name] = value;
  }
  return options;
}

/** A seeded generator, so runs compare. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Entities and relations written in one transaction with prepared statements: seconds, not minutes. */
function generate(file: string, options: Options, rand: () => number): string[] {
  const db = new BetterSqlite3(file);
  const now = new Date(Date.now() - 3_600_000).toISOString();
  const ids = Array.from({ length: options.entities }, () => randomUUID());
  const entity = db.prepare(
    `insert into graph_entities (id, tenant_id, type, key, name, namespace, properties, created_at, updated_at, version) values (?, ?, 'Service', ?, ?, 'shared/graph', '{}', ?, ?, 1)`,
  );
  const relation = db.prepare(
    `insert into graph_relations (id, tenant_id, type, source_id, target_id, properties, weight, valid_from, recorded_at) values (?, ?, 'DEPENDS_ON', ?, ?, '{}', ?, ?, ?)`,
  );
  db.transaction(() => {
    for (const [i, id] of ids.entries()) entity.run(id, DEFAULT_TENANT, `svc-${i}`, `Service ${i}`, now, now);
    for (const source of ids) {
      for (let d = 0; d < options.degree; d++) {
        const target = ids[Math.floor(rand() * ids.length)] as string;
        relation.run(randomUUID(), DEFAULT_TENANT, source, target, 1 + Math.floor(rand() * 10), now, now);
      }
    }
  })();
  db.exec('analyze');
  db.close();
  return ids;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const rand = random(42);
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-graph-'));
  const env = { ...process.env, MEMORY_PORT: '0', DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '', LOG_LEVEL: 'warn' };
  const running = await startSubgraph(memory, env);
  const identity = createIdentityService(loadIdentityConfig(env));
  const call = async (query: string, variables: Record<string, unknown>) => {
    const token = await identity.signIdentity({ kind: 'user', subject: 'bench', tenantId: DEFAULT_TENANT, scopes: PLATFORM_SCOPES, agentId: null }, 'memory');
    const res = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-gateway-identity': token },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors).slice(0, 500));
    return body.data as Record<string, unknown>;
  };

  try {
    const started = performance.now();
    const ids = generate(join(dataDir, 'memory.sqlite'), options, rand);
    const generateSeconds = (performance.now() - started) / 1000;
    const pick = () => ids[Math.floor(rand() * ids.length)] as string;

    const EXPAND =
      'query($id: ID!) { expandGraph(input: { from: [{ id: $id }], depth: 2, maxNodes: 200 }) { truncated nodes { depth entity { id } } edges { id } } }';
    const PATH =
      'query($from: ID!, $to: ID!, $weighted: Boolean, $depth: Int) { shortestPath(input: { from: { id: $from }, to: { id: $to }, weighted: $weighted, maxDepth: $depth }) { length cost } }';
    const rows: string[] = [];
    const time = async (label: string, run: () => Promise<Record<string, unknown>>, note: (d: Record<string, unknown>) => number) => {
      const times: number[] = [];
      let sum = 0;
      for (let q = 0; q < options.queries; q++) {
        const t0 = performance.now();
        const data = await run();
        times.push(performance.now() - t0);
        sum += note(data);
      }
      times.sort((a, b) => a - b);
      rows.push(`| ${label} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 99).toFixed(1)} | ${(sum / options.queries).toFixed(1)} |`);
    };
    // Warm-up: the first requests compile statements and fill the page cache.
    for (let i = 0; i < 20; i++) await call(EXPAND, { id: pick() });
    await time(
      '2-hop expansion, both directions (≤ 200 nodes)',
      () => call(EXPAND, { id: pick() }),
      (d) => (d.expandGraph as { nodes: unknown[] }).nodes.length,
    );
    await time(
      'shortest path, unweighted, outgoing, maxDepth 6',
      () => call(PATH, { from: pick(), to: pick(), weighted: false, depth: 6 }),
      (d) => (d.shortestPath === null ? 0 : 1),
    );
    await time(
      'shortest path, weighted, outgoing, maxDepth 4',
      () => call(PATH, { from: pick(), to: pick(), weighted: true, depth: 4 }),
      (d) => (d.shortestPath === null ? 0 : 1),
    );
    console.log(
      `\nknowledge graph (memory subgraph), SQLite, ${options.entities} entities, ${options.entities * options.degree} relations (out-degree ${options.degree}), ${options.queries} queries per row\n`,
    );
    console.log(`generated in ${generateSeconds.toFixed(1)} s (one transaction, prepared statements)\n`);
    console.log('| at the subgraph | p50 ms | p99 ms | mean nodes (expansion) / share found (paths) |\n|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await running.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
