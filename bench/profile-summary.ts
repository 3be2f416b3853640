// Summarises a V8 .cpuprofile (node --cpu-prof) as text: self time by package or source area and
// by function, in percent of the busy (non-idle) samples. `npm run bench -- --profile` writes the
// profiles; then: npx tsx bench/profile-summary.ts <file.cpuprofile> [--top 30]
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface Share {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  idleMs: number;
  byArea: Share[];
  byFunction: Share[];
  /** Time with the function anywhere on the stack (once per sample, recursion counted once). */
  inclusive: Share[];
  /** Busy time by stage of a gateway request: each sample goes to the innermost stage on its stack. */
  byStage: Share[];
}

/**
 * Stages of a gateway request. A sample belongs to the first marker stage any frame of its stack
 * matches (they are checked in this order); failing that, to the package of the innermost frame
 * that belongs to one. Async continuations start at the function that resumed, so a stage is
 * what runs inside it, whatever awaited it.
 */
const MARKERS: { stage: string; test: (fn: string, area: string) => boolean }[] = [
  { stage: 'garbage collection', test: (fn) => fn === '(garbage collector)' },
  { stage: 'logging (pino)', test: (_fn, area) => area === 'pino' || area === 'sonic-boom' },
  {
    stage: 'JSON serialisation of the response',
    test: (fn, area) => fn === 'prettyJSONStringify' || (area === 'gateway/server.ts' && (fn === '' || fn === 'stringifyResult')),
  },
  {
    stage: 'subgraph HTTP client (request, parse answer)',
    test: (fn, area) =>
      ['undici', 'make-fetch-happen', 'minipass-fetch', 'agent-base', '@npmcli/agent', 'minipass', 'node-fetch', '@gar/promise-retry'].includes(area) ||
      area === 'gateway/subgraph-client.ts' ||
      area === 'gateway/dedup.ts' ||
      ((fn === 'sendRequest' || fn === 'process') && area === '@apollo/gateway'),
  },
  { stage: 'result shaping (computeResponse)', test: (fn) => fn === 'computeResponse' },
];
const PACKAGES: { stage: string; areas: RegExp }[] = [
  {
    stage: 'gateway executor (operation, plan lookup, fetch orchestration)',
    areas: /^(@apollo\/gateway|@apollo\/query-planner|@apollo\/federation-internals|@opentelemetry\/api)$/,
  },
  {
    stage: 'Apollo Server request pipeline (parse/validate cache, plugins, HTTP semantics)',
    areas: /^(@apollo\/server|@apollo\/utils\..*|graphql|negotiator|content-type|express|body-parser|lru-cache)$/,
  },
  { stage: 'HTTP server, sockets, event loop', areas: /^(runtime\/http\.ts|gateway\/.*|node:.*)$/ },
];

function stageOf(frames: readonly { fn: string; area: string }[]): string {
  for (const marker of MARKERS) if (frames.some((f) => marker.test(f.fn, f.area))) return marker.stage;
  for (const frame of frames) {
    if (frame.area.startsWith('node:') || frame.area.startsWith('(')) continue;
    const known = PACKAGES.find((p) => p.areas.test(frame.area));
    if (known) return known.stage;
  }
  return 'HTTP server, sockets, event loop';
}

const IDLE = new Set(['(idle)']);

/** Where a function lives: an npm package, a folder of this repo, Node's internals, or V8's own buckets. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? `internal/${url.split('/')[1] ?? ''}` : url.slice(5)}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const repo = /\/(gateway|runtime|subgraphs|bench|scripts)\/(.*)$/.exec(url);
  if (repo) return `${repo[1]}/${repo[2]?.split('/')[0]}`;
  return url.replace(/^file:\/\//, '');
}

/**
 * Frames of a bundle with a source map next to it (our gateway runs as dist/gateway.mjs) are
 * put back at their source file and line, so they count for their own area and stage. The map
 * must be the one of the bundle that was profiled (it is rewritten by every build).
 */
function withSourceLocations(profile: CpuProfile): CpuProfile {
  const maps = new Map<string, SourceMap | null>();
  const mapOf = (url: string): SourceMap | null => {
    let map = maps.get(url);
    if (map === undefined) {
      map = null;
      if (url.startsWith('file://') && !url.includes('/node_modules/')) {
        const file = `${fileURLToPath(url)}.map`;
        if (existsSync(file)) map = new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as SourceMapPayload);
      }
      maps.set(url, map);
    }
    return map;
  };
  const nodes = profile.nodes.map((node) => {
    const { url, lineNumber, columnNumber } = node.callFrame;
    const map = url ? mapOf(url) : null;
    const entry = map?.findEntry(lineNumber, columnNumber ?? 0);
    if (!entry || !('originalSource' in entry)) return node;
    return { ...node, callFrame: { ...node.callFrame, url: entry.originalSource, lineNumber: entry.originalLine } };
  });
  return { ...profile, nodes };
}

export function summarise(original: CpuProfile, top = 25): ProfileSummary {
  const profile = withSourceLocations(original);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const selfMs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    // Each sample's time is the delta to the next sample.
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i] as number;
      const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      selfMs.set(id, (selfMs.get(id) ?? 0) + dt);
    }
  } else {
    const total = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
    const perHit = total > 0 ? (profile.endTime - profile.startTime) / 1000 / total : 0;
    for (const node of profile.nodes) selfMs.set(node.id, (node.hitCount ?? 0) * perHit);
  }
  let idleMs = 0;
  let totalMs = 0;
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const stages = new Map<string, number>();
  const label = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    const file = url ? url.slice(url.lastIndexOf('/') + 1) : '';
    return `${functionName || '(anonymous)'}${file ? ` ${area === file ? '' : `${area} `}${file}:${lineNumber + 1}` : ''}`;
  };
  for (const [id, ms] of selfMs) {
    const node = byId.get(id);
    if (!node) continue;
    totalMs += ms;
    const { functionName, url, lineNumber } = node.callFrame;
    if (IDLE.has(functionName)) {
      idleMs += ms;
      continue;
    }
    void lineNumber;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const fn = label(node);
    functions.set(fn, (functions.get(fn) ?? 0) + ms);
    const frames: { fn: string; area: string }[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const frame = byId.get(at);
      if (frame) frames.push({ fn: frame.callFrame.functionName, area: areaOf(frame.callFrame.url, frame.callFrame.functionName) });
    }
    const stage = stageOf(frames);
    stages.set(stage, (stages.get(stage) ?? 0) + ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const frame = byId.get(at);
      if (!frame || frame.callFrame.functionName === '(root)') continue;
      const key = label(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + ms);
    }
  }
  const busyMs = totalMs - idleMs;
  const shares = (m: Map<string, number>, limit = top) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), percent: busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0 }));
  return {
    totalMs: Math.round(totalMs),
    busyMs: Math.round(busyMs),
    idleMs: Math.round(idleMs),
    byArea: shares(areas),
    byFunction: shares(functions),
    inclusive: shares(inclusive, top * 2),
    byStage: shares(stages),
  };
}

function table(title: string, rows: Share[]): string {
  return [`| ${title} | self ms | % of busy |`, '|---|---:|---:|', ...rows.map((r) => `| ${r.name.replace(/\|/g, '\\|')} | ${r.ms} | ${r.percent} |`)].join(
    '\n',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string' } }, allowPositionals: true });
  const top = Number(values.top ?? 25);
  for (const file of positionals) {
    const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top);
    console.log(`## ${file}\n\nsampled ${summary.totalMs} ms, busy ${summary.busyMs} ms, idle ${summary.idleMs} ms\n`);
    console.log(`${table('stage (innermost on the stack)', summary.byStage)}\n`);
    console.log(`${table('area (self time)', summary.byArea)}\n`);
    console.log(`${table('function (self time)', summary.byFunction)}\n`);
    console.log(`${table('function (inclusive time)', summary.inclusive)}\n`);
  }
}
