// `npm run bench:subscriptions`: N concurrent graphql-ws subscribers on one gateway (each its own
// WebSocket), all subscribed to the same task's events with fields from two subgraphs. Measures
// the gateway's resident memory per subscriber and, for events fanned out to all of them, the
// delay from the mutation's acknowledgement to each subscriber's receipt. Prints a Markdown
// table; see bench/README.md ("Subscriptions").
//
//   npm run bench:subscriptions                         1,000, 5,000 and 10,000 subscribers
//   npm run bench:subscriptions -- --subscribers 2000   one size (or a comma-separated list)
//   npm run bench:subscriptions -- --events 50          events measured per size (default 30)
//   npm run bench:subscriptions -- --distinct           every subscriber with its own Accept-Language
//                                                       header: the same operation, but nothing shared
//                                                       (one upstream subscription and one execution
//                                                       per subscriber and event)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { mintDevToken } from '../scripts/token.ts';
import { freePort, launch, readyz, type Service } from './launcher.ts';

interface Options {
  subscribers: number[];
  events: number;
  distinct: boolean;
}

const USAGE = 'usage: npm run bench:subscriptions -- [--subscribers 1000,5000,10000] [--events 30] [--distinct]';

function parseOptions(argv: string[]): Options {
  const options: Options = { subscribers: [1000, 5000, 10000], events: 30, distinct: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === '--subscribers') {
      options.subscribers = value()
        .split(',')
        .map((n) => Number(n.trim()));
      if (options.subscribers.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--subscribers takes positive integers\n${USAGE}`);
    } else if (arg === '--events') {
      options.events = Number(value());
      if (!Number.isInteger(options.events) || options.events < 1 || options.events > 98) throw new Error(`--events takes 1 to 98\n${USAGE}`);
    } else if (arg === '--distinct') {
      options.distinct = true;
    } else {
      throw new Error(`unknown option ${arg}\n${USAGE}`);
    }
  }
  return options;
}

const log = (message: string) => console.error(`[bench:subscriptions] ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kb / 1024;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Every request and subscriber acts as the admin of the demo tenant (the gateway refuses anonymous callers). */
const authorization = `Bearer ${await mintDevToken({}, { NODE_ENV: 'development' })}`;

async function gql<T>(url: string, query: string, variables?: Record<string, unknown>): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: unknown };
  if (!body.data || body.errors) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function stats(gatewayBase: string): Promise<{ clientSubscriptions: number; sharedStreams: number; upstreamSubscriptions: number }> {
  // The counters need the admin scope: the development token has it.
  return (await (await fetch(`${gatewayBase}/debug/subscriptions`, { headers: { authorization } })).json()) as {
    clientSubscriptions: number;
    sharedStreams: number;
    upstreamSubscriptions: number;
  };
}

interface Row {
  subscribers: number;
  mode: string;
  sharedStreams: number;
  upstreamSubscriptions: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  kbPerSubscriber: number;
  deliveries: number;
  missed: number;
  p50: number;
  p99: number;
  allP50: number;
  allP99: number;
}

interface Subscriber {
  client: Client;
  /** percent → arrival time (performance.now()). */
  arrivals: Map<number, number>;
  dispose: () => void;
}

async function run(size: number, options: Options, work: string): Promise<Row> {
  const dataDir = mkdtempSync(join(work, 'data-'));
  const logDir = mkdtempSync(join(work, 'logs-'));
  // Quiet services: an access log line per request would measure the log, not the gateway.
  const common = { NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ALLOW_UNSIGNED_DEV: 'true' };
  const services: Service[] = [];
  const subscribers: Subscriber[] = [];
  try {
    const [agentsPort, orchestrationPort, gatewayPort] = [await freePort(), await freePort(), await freePort()];
    services.push(
      await launch({
        name: 'agents',
        args: ['scripts/subgraph.ts', 'agents'],
        port: agentsPort,
        env: { ...common, AGENTS_PORT: String(agentsPort) },
        logDir,
        ready: readyz,
      }),
    );
    services.push(
      await launch({
        name: 'orchestration',
        args: ['scripts/subgraph.ts', 'orchestration'],
        port: orchestrationPort,
        env: { ...common, ORCHESTRATION_PORT: String(orchestrationPort), SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${agentsPort}/graphql` },
        logDir,
        ready: readyz,
      }),
    );
    const others: Record<string, string> = {};
    for (const name of ['governance']) {
      // Subgraphs besides the two the benchmark uses: the gateway routes to every subgraph of
      // the supergraph and checks them at start.
      try {
        readFileSync(fileURLToPath(new URL(`../schema/${name}.graphql`, import.meta.url)));
      } catch {
        continue;
      }
      const port = await freePort();
      services.push(
        await launch({
          name,
          args: ['scripts/subgraph.ts', name],
          port,
          env: { ...common, [`${name.toUpperCase()}_PORT`]: String(port) },
          logDir,
          ready: readyz,
        }),
      );
      others[`SUBGRAPH_${name.toUpperCase()}_URL`] = `http://127.0.0.1:${port}/graphql`;
    }
    const gateway = await launch({
      name: 'gateway',
      args: ['gateway/main.ts'],
      port: gatewayPort,
      env: {
        ...common,
        GATEWAY_PORT: String(gatewayPort),
        SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${agentsPort}/graphql`,
        SUBGRAPH_ORCHESTRATION_URL: `http://127.0.0.1:${orchestrationPort}/graphql`,
        ...others,
        // A slow benchmark client must not be mistaken for a slow consumer and dropped.
        SUBSCRIPTION_QUEUE_LIMIT: '10000',
      },
      logDir,
      ready: readyz,
    });
    services.push(gateway);
    const url = `${gateway.baseUrl}/graphql`;

    const { registerAgent } = await gql<{ registerAgent: { id: string } }>(
      url,
      `mutation { registerAgent(input: { name: "Bench agent", skills: [{ id: "b", name: "B", tags: ["bench"] }] }) { id } }`,
    );
    const agentId = registerAgent.id;
    await gql(url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: agentId });
    const { submitTask } = await gql<{ submitTask: { id: string } }>(
      url,
      `mutation { submitTask(input: { title: "Bench task", requiredSkillTags: ["bench"] }) { id } }`,
    );
    const taskId = submitTask.id;
    await gql(url, `mutation($a: ID!) { claimTask(agentId: $a, skillTags: ["bench"]) { id } }`, { a: agentId });
    const progress = (percent: number) =>
      gql(url, `mutation($t: ID!, $a: ID!, $p: Int!) { reportTaskProgress(taskId: $t, agentId: $a, percent: $p, leaseSeconds: 3600) { id } }`, {
        t: taskId,
        a: agentId,
        p: percent,
      });
    // Warm the gateway (plans, connection pools, JIT) before its baseline.
    await progress(1);
    for (let i = 0; i < 50; i++) await gql(url, `query($t: ID!) { task(id: $t) { state progress { percent } agent { name health } } }`, { t: taskId });
    await sleep(1000);
    const rssBeforeMb = rssMb(gateway.pid);

    log(`${size} subscribers: connecting`);
    const wsUrl = url.replace(/^http/, 'ws');
    for (let i = 0; i < size; i += 250) {
      const batch = Array.from({ length: Math.min(250, size - i) }, (_, j) => i + j);
      await Promise.all(
        batch.map(async (n) => {
          // A result-affecting forwarded header differing per subscriber defeats sharing on purpose.
          const headers = options.distinct ? { 'accept-language': `x-bench-${n}` } : {};
          const webSocketImpl = class extends WebSocket {
            constructor(address: string, protocols?: string | string[]) {
              super(address, protocols, { headers });
            }
          };
          const client = createClient({ url: wsUrl, webSocketImpl, connectionParams: { authorization }, retryAttempts: 0, lazy: false, keepAlive: 0 });
          await new Promise<void>((resolve, reject) => {
            const off = client.on('connected', () => {
              off();
              resolve();
            });
            client.on('error', reject);
          });
          const arrivals = new Map<number, number>();
          const dispose = client.subscribe<Record<string, { task: { progress: { percent: number } | null } }>>(
            {
              query: `subscription($t: ID) { taskUpdated(taskId: $t) { kind occurredAt task { id state progress { percent } agent { name health } } } }`,
              variables: { t: taskId },
            },
            {
              next: (result) => {
                const event = result.data ? Object.values(result.data)[0] : undefined;
                const percent = event?.task.progress?.percent;
                if (typeof percent === 'number' && !arrivals.has(percent)) arrivals.set(percent, performance.now());
              },
              error: (err) => log(`subscriber ${n} failed: ${JSON.stringify(err)}`),
              complete: () => {},
            },
          );
          subscribers.push({ client, arrivals, dispose });
        }),
      );
    }
    const deadline = Date.now() + 120_000;
    while ((await stats(gateway.baseUrl)).clientSubscriptions < size) {
      if (Date.now() > deadline) throw new Error('subscriptions did not all reach the gateway');
      await sleep(200);
    }
    // The subgraph listens once its bus subscription is up: send events until everyone got one.
    for (let percent = 2; ; percent++) {
      if (percent > 9) throw new Error('warm-up events did not reach every subscriber');
      await progress(percent);
      const until = Date.now() + 20_000;
      while (!subscribers.every((s) => s.arrivals.has(percent)) && Date.now() < until) await sleep(50);
      if (subscribers.every((s) => s.arrivals.has(percent))) break;
    }
    await sleep(2000);
    const rssAfterMb = rssMb(gateway.pid);
    const shared = await stats(gateway.baseUrl);
    log(
      `${size} subscribers: ${shared.sharedStreams} shared stream(s), ${shared.upstreamSubscriptions} upstream subscription(s); measuring ${options.events} events`,
    );

    const delays: number[] = [];
    const lastDelays: number[] = [];
    let missed = 0;
    for (let e = 0; e < options.events; e++) {
      const percent = 10 + e;
      await progress(percent);
      const acked = performance.now();
      const until = Date.now() + 30_000;
      while (!subscribers.every((s) => s.arrivals.has(percent)) && Date.now() < until) await sleep(5);
      let last = Number.NEGATIVE_INFINITY;
      for (const s of subscribers) {
        const at = s.arrivals.get(percent);
        if (at === undefined) {
          missed += 1;
          continue;
        }
        delays.push(at - acked);
        last = Math.max(last, at - acked);
      }
      lastDelays.push(last);
      await sleep(100);
    }
    delays.sort((a, b) => a - b);
    lastDelays.sort((a, b) => a - b);
    return {
      subscribers: size,
      mode: options.distinct ? 'distinct (nothing shared)' : 'identical (shared)',
      sharedStreams: shared.sharedStreams,
      upstreamSubscriptions: shared.upstreamSubscriptions,
      rssBeforeMb,
      rssAfterMb,
      kbPerSubscriber: ((rssAfterMb - rssBeforeMb) * 1024) / size,
      deliveries: delays.length,
      missed,
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      allP50: percentile(lastDelays, 50),
      allP99: percentile(lastDelays, 99),
    };
  } finally {
    for (const s of subscribers) s.dispose();
    await Promise.allSettled(subscribers.map((s) => s.client.dispose()));
    for (const service of services.reverse()) await service.stop();
  }
}

function table(rows: Row[]): string {
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
  const lines = [
    '| subscribers | operations | shared streams / upstream subscriptions | gateway RSS before → after (MB) | RSS per subscriber (KB) | delivery after ack p50 / p99 (ms) | last subscriber p50 / p99 (ms) | deliveries (missed) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.subscribers.toLocaleString('en-US')} | ${r.mode} | ${r.sharedStreams} / ${r.upstreamSubscriptions} | ${f(r.rssBeforeMb, 0)} → ${f(r.rssAfterMb, 0)} | ${f(r.kbPerSubscriber)} | ${f(r.p50)} / ${f(r.p99)} | ${f(r.allP50)} / ${f(r.allP99)} | ${r.deliveries.toLocaleString('en-US')} (${r.missed}) |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'bench-subscriptions-'));
  const rows: Row[] = [];
  try {
    for (const size of options.subscribers) rows.push(await run(size, options, work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}`;
  const output = [
    `Subscriptions benchmark (${options.events} events per size; one gateway; subscribers in the benchmark process; ${machine})`,
    '',
    table(rows),
    '',
    'Delivery: from the mutation response reaching the benchmark to each subscriber receiving the event (negative: the event beat the response).',
    'Last subscriber: per event, until every subscriber had it.',
  ].join('\n');
  console.log(output);
  const results = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(results, { recursive: true });
  writeFileSync(join(results, `subscriptions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ options, machine, rows }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
