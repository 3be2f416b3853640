// The vector engines measured for the memory subgraph's index (README "How vector search is done"):
// recall@10 against an exact ranking, p50/p99 search and ingest, on clustered unit vectors.
// usearch and better-sqlite3 are dependencies; the others are not:
//   npm install --no-save sqlite-vec hnswlib-node && npm rebuild hnswlib-node
//   node bench/vector-engines.mjs 10000 usearch,hnsw,sqlitevec 200
//   node bench/vector-engines.mjs 100000 usearch,sqlitevec 100
// Cluster noise 1.0 and efConstruction 128 (EFADD) as for the 100,000 figures; the 10,000 ones
// in the README were taken with noise 0.6.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const N = Number(process.argv[2] ?? 10000),
  D = 384,
  Q = Number(process.argv[4] ?? 200),
  K = 10;
const which = (process.argv[3] ?? 'usearch,hnsw,sqlitevec').split(',');
let seed = 42;
const rnd = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
const C = 200;
const centers = Array.from({ length: C }, () => Float32Array.from({ length: D }, gauss));
const norm = (v) => {
  let s = 0;
  for (const x of v) s += x * x;
  s = Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] /= s;
  return v;
};
const mk = () => {
  const c = centers[Math.floor(rnd() * C)];
  return norm(Float32Array.from({ length: D }, (_, i) => c[i] + 1.0 * gauss()));
};
const data = Array.from({ length: N }, mk);
const queries = Array.from({ length: Q }, mk);
const dot = (a, b) => {
  let s = 0;
  for (let i = 0; i < D; i++) s += a[i] * b[i];
  return s;
};
let t = performance.now();
const truth = queries.map((q) =>
  data
    .map((v, i) => [i, dot(q, v)])
    .sort((a, b) => b[1] - a[1])
    .slice(0, K)
    .map((x) => x[0]),
);
console.log(`N=${N} exact JS scan ${((performance.now() - t) / Q).toFixed(2)} ms/query`);
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
function report(name, ingestMs, search) {
  const lat = [];
  let hits = 0;
  queries.forEach((q, qi) => {
    const t0 = performance.now();
    const ids = search(q);
    lat.push(performance.now() - t0);
    const tr = new Set(truth[qi]);
    hits += ids.filter((i) => tr.has(i)).length;
  });
  console.log(
    `${name}: ingest ${(N / (ingestMs / 1000)).toFixed(0)}/s (${(ingestMs / 1000).toFixed(1)} s), recall@10 ${(hits / (Q * K)).toFixed(3)}, p50 ${pct(lat, 0.5).toFixed(2)} ms, p99 ${pct(lat, 0.99).toFixed(2)} ms, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`,
  );
}
if (which.includes('usearch')) {
  const { Index, MetricKind, ScalarKind } = require('usearch');
  for (const [conn, ef] of JSON.parse(process.argv[5] ?? '[[16,64]]')) {
    const idx = new Index({
      dimensions: D,
      metric: MetricKind.Cos,
      quantization: ScalarKind.F32,
      connectivity: conn,
      expansion_add: Number(process.env.EFADD ?? 128),
      expansion_search: ef,
      multi: false,
    });
    t = performance.now();
    const flat = new Float32Array(N * D);
    for (const [i, v] of data.entries()) flat.set(v, i * D);
    for (let i = 0; i < N; i += 1000)
      idx.add(
        BigUint64Array.from({ length: Math.min(1000, N - i) }, (_, j) => BigInt(i + j)),
        flat.subarray(i * D, Math.min(N, i + 1000) * D),
        1,
      );
    const ing = performance.now() - t;
    report(`usearch M=${conn} ef=${ef}`, ing, (q) => Array.from(idx.search(q, K, 1).keys, Number));
  }
}
if (which.includes('hnsw')) {
  try {
    // biome-ignore lint/correctness/noUndeclaredDependencies: measured, not a dependency (see the top)
    const { HierarchicalNSW } = require('hnswlib-node');
    const idx = new HierarchicalNSW('cosine', D);
    idx.initIndex(N, 16, 128, 100);
    idx.setEf(64);
    t = performance.now();
    for (const [i, v] of data.entries()) idx.addPoint(Array.from(v), i);
    const ing = performance.now() - t;
    report('hnswlib-node M=16 ef=64', ing, (q) => idx.searchKnn(Array.from(q), K).neighbors);
  } catch (e) {
    console.log('hnswlib-node:', e.message);
  }
}
if (which.includes('sqlitevec')) {
  const Database = require('better-sqlite3');
  // biome-ignore lint/correctness/noUndeclaredDependencies: measured, not a dependency (see the top)
  const sv = require('sqlite-vec');
  const db = new Database(':memory:');
  sv.load(db);
  db.exec(`create virtual table v using vec0(embedding float[${D}] distance_metric=cosine)`);
  const ins = db.prepare('insert into v(rowid, embedding) values (?, ?)');
  t = performance.now();
  db.transaction(() => {
    for (const [i, v] of data.entries()) ins.run(BigInt(i), Buffer.from(v.buffer));
  })();
  const ing = performance.now() - t;
  const s = db.prepare(`select rowid from v where embedding match ? and k = ${K} order by distance`);
  report('sqlite-vec vec0 (exact)', ing, (q) => s.all(Buffer.from(q.buffer)).map((r) => Number(r.rowid)));
}
