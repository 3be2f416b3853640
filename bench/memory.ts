// `npm run bench:memory`: the memory subgraph on SQLite in this process, spoken to over HTTP as
// the gateway does (signed identity). Ingests N memories with clustered vectors in batches of
// 100, then times lexical, vector and hybrid searches at the subgraph and checks vector recall@10
// against a brute-force ranking computed here. Prints a Markdown table (bench/README.md,
// "Memory").
//
//   npm run bench:memory                      10,000 memories, 384 dimensions
//   npm run bench:memory -- --memories 100000 --dimensions 384 --queries 50
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES } from '../runtime/identity.ts';
import { startSubgraph } from '../runtime/subgraph.ts';
import { compare } from '../subgraphs/memory/domain.ts';
import { memory } from '../subgraphs/memory/index.ts';

interface Options {
  memories: number;
  dimensions: number;
  queries: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { memories: 10_000, dimensions: 384, queries: 50 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (!(name === 'memories' || name === 'dimensions' || name === 'queries') || !Number.isInteger(value) || value < 1) {
      throw new Error('usage: npm run bench:memory -- [--memories 10000] [--dimensions 384] [--queries 50]');
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

const WORDS =
  'agent task memory vector search invoice refund deploy database rotate key schedule report summary customer review draft publish research source'.split(' ');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const rand = random(42);
  const centres = Array.from({ length: 32 }, () => Array.from({ length: options.dimensions }, () => rand() - 0.5));
  const vectorNear = () => {
    const c = centres[Math.floor(rand() * centres.length)] as number[];
    return c.map((x) => x + (rand() - 0.5) * 0.3);
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-memory-'));
  const env = { ...process.env, MEMORY_PORT: '0', DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '', LOG_LEVEL: 'warn' };
  const running = await startSubgraph(memory, env);
  const identity = createIdentityService(loadIdentityConfig(env));
  const call = async (query: string, variables: Record<string, unknown>) => {
    // Signed per request, as the gateway does: identity tokens live for seconds.
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
    const stored: { id: string; vector: number[]; namespace: string }[] = [];
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    for (let i = 0; i < options.memories; i += 100) {
      const inputs = Array.from({ length: Math.min(100, options.memories - i) }, () => ({
        namespace: `shared/bench/${Math.floor(rand() * 10)}`,
        text: Array.from({ length: 8 }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' '),
        vector: vectorNear(),
      }));
      const data = await call('mutation($inputs: [RememberInput!]!) { rememberBatch(inputs: $inputs) { id } }', { inputs });
      for (const [j, row] of (data.rememberBatch as { id: string }[]).entries())
        stored.push({ id: row.id, vector: inputs[j]!.vector, namespace: inputs[j]!.namespace });
    }
    const ingestPerSecond = options.memories / ((performance.now() - started) / 1000);
    // The machine is shared: CPU time (subgraph and client, one process) says more than the wall clock.
    const cpu = process.cpuUsage(cpuBefore);
    const ingestPerCpuSecond = options.memories / ((cpu.user + cpu.system) / 1e6);

    // The index loads on the first ask and builds in the background; searches are timed once it holds every vector.
    const buildStarted = performance.now();
    let status: { engine: string; loaded: boolean; indexed: number; pending: number } | undefined;
    for (;;) {
      status = (await call('{ memoryVectorIndex { engine loaded vectors indexed pending } }', {})).memoryVectorIndex as typeof status;
      if (status?.engine !== 'hnsw' || (status.loaded && status.pending === 0 && status.indexed >= options.memories)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const buildSeconds = (performance.now() - buildStarted) / 1000;

    const SEARCH = 'query($input: MemorySearchInput!) { searchMemories(input: $input) { score memory { id } } }';
    const rows: string[] = [];
    const recall: Record<string, number> = {};
    for (const mode of ['LEXICAL', 'VECTOR', 'HYBRID', 'VECTOR_FILTERED'] as const) {
      let recallSum = 0;
      const times: number[] = [];
      const cpuTimes: number[] = [];
      // Queries first, then the timed searches, then recall: the brute-force ranking's garbage
      // would otherwise be collected during the timed calls (one process for both sides).
      const filtered = mode === 'VECTOR_FILTERED';
      const vectorOnly = mode === 'VECTOR' || filtered;
      const queries = Array.from({ length: options.queries }, () => {
        const vector = vectorNear();
        const text = `${WORDS[Math.floor(rand() * WORDS.length)]} ${WORDS[Math.floor(rand() * WORDS.length)]}`;
        // VECTOR_FILTERED: one namespace of ten, the filter applied inside the search.
        return {
          mode: filtered ? 'VECTOR' : mode,
          k: 10,
          ...(vectorOnly ? {} : { text }),
          ...(mode === 'LEXICAL' ? {} : { vector }),
          ...(filtered ? { filter: { namespacePrefix: 'shared/bench/3' } } : {}),
        };
      });
      const answers: Set<string>[] = [];
      for (const input of queries) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const data = await call(SEARCH, { input });
        times.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpuTimes.push((c.user + c.system) / 1000);
        answers.push(new Set((data.searchMemories as { memory: { id: string } }[]).map((h) => h.memory.id)));
      }
      if (vectorOnly) {
        queries.forEach((input, q) => {
          const vector = input.vector as number[];
          const truth = stored
            .filter((s) => !filtered || s.namespace === 'shared/bench/3')
            .map((s) => ({ id: s.id, d: compare('COSINE', vector, s.vector).distance }))
            .sort((a, b) => a.d - b.d)
            .slice(0, 10);
          recallSum += truth.filter((t) => answers[q]?.has(t.id)).length / truth.length;
        });
      }
      times.sort((a, b) => a - b);
      cpuTimes.sort((a, b) => a - b);
      if (mode === 'VECTOR' || mode === 'VECTOR_FILTERED') recall[mode] = recallSum / options.queries;
      rows.push(
        `| ${mode.toLowerCase().replace('_', ', ')} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 99).toFixed(1)} | ${percentile(cpuTimes, 50).toFixed(1)} | ${percentile(cpuTimes, 99).toFixed(1)} |`,
      );
    }
    console.log(`\nmemory subgraph, SQLite, ${options.memories} memories × ${options.dimensions} dimensions, ${options.queries} queries per mode, k = 10\n`);
    console.log(
      `ingest (rememberBatch of 100 over HTTP): ${Math.round(ingestPerSecond)} memories/s wall clock, ${Math.round(ingestPerCpuSecond)} per CPU-second (subgraph and client)`,
    );
    console.log(
      `vector index: ${status?.engine}, ${status?.engine === 'hnsw' ? `loaded and built in ${buildSeconds.toFixed(1)} s after the ingest` : 'exact scan'}`,
    );
    console.log(`vector recall@10 against brute force: ${recall.VECTOR?.toFixed(3)} (one namespace of ten: ${recall.VECTOR_FILTERED?.toFixed(3)})\n`);
    console.log('| search at the subgraph | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms |\n|---|---|---|---|---|');
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
