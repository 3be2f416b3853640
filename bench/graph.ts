// `npm run bench:graph`: the knowledge graph of the memory subgraph on SQLite in this process,
// spoken to over HTTP as the gateway does (signed identity). The graph is generated straight into
// the subgraph's SQLite file in one transaction (N entities, each with `degree` DEPENDS_ON
// relations to random others, weights 1 to 10), then 2-hop expansions and shortest paths
// (unweighted and weighted) between random entities are timed at the subgraph. Prints a Markdown
// table (bench/README.md, "Knowledge graph").
//
//   npm run bench:graph                                   100,000 entities, 500,000 relations
//   npm run bench:graph -- --entities 10000 --degree 5 --queries 200
//   DATABASE_URL=postgres://… npm run bench:graph -- --postgres 1   the same on PostgreSQL (own schema, dropped after)
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES } from '../runtime/identity.ts';
import { startSubgraph } from '../runtime/subgraph.ts';
import { memory } from '../subgraphs/memory/index.ts';

interface Options {
  entities: number;
  degree: number;
  queries: number;
  postgres: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { entities: 100_000, degree: 5, queries: 200, postgres: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (
      !(name === 'entities' || name === 'degree' || name === 'queries' || name === 'postgres') ||
      !Number.isInteger(value) ||
      value < (name === 'postgres' ? 0 : 1)
    ) {
      throw new Error('usage: npm run bench:graph -- [--entities 100000] [--degree 5] [--queries 200] [--postgres 1]');
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

/** The same graph into PostgreSQL, 10,000 rows per statement (unnest of arrays). */
async function generatePostgres(url: string, schema: string, options: Options, rand: () => number): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`set search_path to "${schema}"`);
    const now = new Date(Date.now() - 3_600_000).toISOString();
    const ids = Array.from({ length: options.entities }, () => randomUUID());
    for (let i = 0; i < ids.length; i += 10_000) {
      const part = ids.slice(i, i + 10_000);
      await client.query(
        `insert into graph_entities (id, tenant_id, type, key, name, namespace, properties, created_at, updated_at, version)
         select id, $2, 'Service', 'svc-' || id, 'Service ' || id, 'shared/graph', '{}', $3, $3, 1 from unnest($1::text[]) as t(id)`,
        [part, DEFAULT_TENANT, now],
      );
    }
    let sources: string[] = [];
    let targets: string[] = [];
    let weights: number[] = [];
    const flush = async () => {
      await client.query(
        `insert into graph_relations (id, tenant_id, type, source_id, target_id, properties, weight, valid_from, recorded_at)
         select gen_random_uuid()::text, $4, 'DEPENDS_ON', s, t, '{}', w, $5, $5 from unnest($1::text[], $2::text[], $3::float8[]) as x(s, t, w)`,
        [sources, targets, weights, DEFAULT_TENANT, now],
      );
      sources = [];
      targets = [];
      weights = [];
    };
    for (const source of ids) {
      for (let d = 0; d < options.degree; d++) {
        sources.push(source);
        targets.push(ids[Math.floor(rand() * ids.length)] as string);
        weights.push(1 + Math.floor(rand() * 10));
      }
      if (sources.length >= 10_000) await flush();
    }
    if (sources.length > 0) await flush();
    await client.query('analyze graph_entities');
    await client.query('analyze graph_relations');
    return ids;
  } finally {
    await client.end();
  }
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`drop schema if exists "${schema}" cascade`);
  await client.end();
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const rand = random(42);
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-graph-'));
  const url = process.env.DATABASE_URL;
  if (options.postgres && !url) throw new Error('--postgres 1 needs DATABASE_URL');
  const prefix = `bench_graph_${randomUUID().slice(0, 8)}_`;
  const env = {
    ...process.env,
    MEMORY_PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL: options.postgres ? url : '',
    DATABASE_SCHEMA_PREFIX: prefix,
    REDIS_URL: '',
    LOG_LEVEL: 'warn',
  };
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
    const ids = options.postgres
      ? await generatePostgres(url as string, `${prefix}memory`, options, rand)
      : generate(join(dataDir, 'memory.sqlite'), options, rand);
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
      `\nknowledge graph (memory subgraph), ${options.postgres ? 'PostgreSQL' : 'SQLite'}, ${options.entities} entities, ${options.entities * options.degree} relations (out-degree ${options.degree}), ${options.queries} queries per row\n`,
    );
    console.log(`generated in ${generateSeconds.toFixed(1)} s\n`);
    console.log('| at the subgraph | p50 ms | p99 ms | mean nodes (expansion) / share found (paths) |\n|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await running.stop();
    if (options.postgres) await dropSchema(url as string, `${prefix}memory`);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
