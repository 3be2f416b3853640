// `npm run bench:collaboration`: one channel with N members (default 1,000), each a different
// user on its own graphql-ws connection subscribed to messageAdded through one gateway. One member
// sends messages; for each, the delay from the sendMessage response to every member's receipt.
// Every member is a different subject, so nothing is shared: one upstream subscription and one
// execution per member and message (collaboration streams are per subject). Prints a Markdown
// table; see bench/README.md ("Collaboration").
//
//   npm run bench:collaboration                      1,000 members, 20 messages
//   npm run bench:collaboration -- --members 200     another size
//   npm run bench:collaboration -- --messages 40     messages measured
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { PLATFORM_SCOPES } from '../runtime/identity.ts';
import { mintDevToken } from '../scripts/token.ts';
import { freePort, launch, readyz, type Service } from './launcher.ts';

const USAGE = 'usage: npm run bench:collaboration -- [--members 1000] [--messages 20]';

function parseOptions(argv: string[]): { members: number; messages: number } {
  const options = { members: 1000, messages: 20 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const v = Number(argv[++i]);
    if (arg === '--members' && Number.isInteger(v) && v >= 2 && v <= 1000) options.members = v;
    else if (arg === '--messages' && Number.isInteger(v) && v >= 1 && v <= 200) options.messages = v;
    else throw new Error(`bad option ${arg}\n${USAGE}`);
  }
  return options;
}

const log = (message: string) => console.error(`[bench:collaboration] ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const USER_SCOPES = PLATFORM_SCOPES.filter((s) => s !== 'admin');
const tokenOf = async (subject: string) => `Bearer ${await mintDevToken({ subject, scopes: USER_SCOPES }, { NODE_ENV: 'development' })}`;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

async function gql<T>(url: string, authorization: string, query: string, variables?: Record<string, unknown>): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: unknown };
  if (!body.data || body.errors) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'bench-collaboration-'));
  const dataDir = mkdtempSync(join(work, 'data-'));
  const logDir = mkdtempSync(join(work, 'logs-'));
  const common = { NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ALLOW_UNSIGNED_DEV: 'true' };
  const services: Service[] = [];
  const clients: Client[] = [];
  try {
    const [collaborationPort, governancePort, gatewayPort] = [await freePort(), await freePort(), await freePort()];
    services.push(
      await launch({
        name: 'collaboration',
        args: ['scripts/subgraph.ts', 'collaboration'],
        port: collaborationPort,
        env: { ...common, COLLABORATION_PORT: String(collaborationPort), COLLABORATION_MESSAGES_PER_MINUTE: '100000' },
        logDir,
        ready: readyz,
      }),
      await launch({
        name: 'governance',
        args: ['scripts/subgraph.ts', 'governance'],
        port: governancePort,
        env: { ...common, GOVERNANCE_PORT: String(governancePort) },
        logDir,
        ready: readyz,
      }),
    );
    const closed = 'http://127.0.0.1:9/graphql';
    const gateway = await launch({
      name: 'gateway',
      args: ['gateway/main.ts'],
      port: gatewayPort,
      env: {
        ...common,
        GATEWAY_PORT: String(gatewayPort),
        SUBGRAPH_COLLABORATION_URL: `http://127.0.0.1:${collaborationPort}/graphql`,
        SUBGRAPH_GOVERNANCE_URL: `http://127.0.0.1:${governancePort}/graphql`,
        SUBGRAPH_AGENTS_URL: closed,
        SUBGRAPH_ORCHESTRATION_URL: closed,
        SUBGRAPH_MEMORY_URL: closed,
        SUBSCRIPTION_QUEUE_LIMIT: '10000',
        RATE_LIMIT_HTTP_REQUESTS: '1000000',
        RATE_LIMIT_SUBSCRIPTIONS: '1000000',
      },
      logDir,
      ready: readyz,
    });
    services.push(gateway);
    const url = `${gateway.baseUrl}/graphql`;
    const owner = await tokenOf('member-0');
    const members = Array.from({ length: options.members - 1 }, (_, i) => ({ kind: 'USER', id: `member-${i + 1}` }));
    const { createChannel } = await gql<{ createChannel: { id: string; participantCount: number } }>(
      url,
      owner,
      'mutation($p: [ParticipantInput!]!) { createChannel(input: { kind: GROUP, title: "bench", participants: $p }) { id participantCount } }',
      { p: members },
    );
    const channelId = createChannel.id;
    log(`channel with ${createChannel.participantCount} members; connecting them`);

    const arrivals: Map<number, number>[] = [];
    const wsUrl = url.replace(/^http/, 'ws');
    const connectStart = performance.now();
    for (let i = 0; i < options.members; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, options.members - i) }, async (_, j) => {
          const n = i + j;
          const client = createClient({
            url: wsUrl,
            webSocketImpl: WebSocket,
            connectionParams: { authorization: await tokenOf(`member-${n}`) },
            retryAttempts: 0,
            lazy: false,
            keepAlive: 0,
          });
          clients.push(client);
          const seen = new Map<number, number>();
          arrivals[n] = seen;
          client.subscribe<{ messageAdded: { message: { sequence: number } } }>(
            {
              query: 'subscription($c: ID!) { messageAdded(channelId: $c) { message { sequence sender { id } parts { text } } } }',
              variables: { c: channelId },
            },
            {
              next: (r) => {
                const s = r.data?.messageAdded.message.sequence;
                if (typeof s === 'number' && !seen.has(s)) seen.set(s, performance.now());
              },
              error: (err) => log(`member ${n} failed: ${JSON.stringify(err)}`),
              complete: () => {},
            },
          );
        }),
      );
    }
    const send = async (text: string) =>
      (
        await gql<{ sendMessage: { sequence: number } }>(url, owner, 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { sequence } }', {
          i: { channelId, parts: [{ text }] },
        })
      ).sendMessage.sequence;
    // Warm-up: until every member has received one message (their subscriptions are all live).
    for (let attempt = 0; ; attempt++) {
      if (attempt > 20) throw new Error('members did not all subscribe');
      const s = await send('warm-up');
      const until = Date.now() + 5000;
      while (!arrivals.every((a) => a.has(s)) && Date.now() < until) await sleep(50);
      if (arrivals.every((a) => a.has(s))) break;
    }
    log(`all ${options.members} subscribed in ${((performance.now() - connectStart) / 1000).toFixed(1)} s; measuring ${options.messages} messages`);

    const delays: number[] = [];
    const lastDelays: number[] = [];
    let missed = 0;
    for (let m = 0; m < options.messages; m++) {
      const s = await send(`message ${m}`);
      const acked = performance.now();
      const until = Date.now() + 20_000;
      while (!arrivals.every((a) => a.has(s)) && Date.now() < until) await sleep(2);
      let last = Number.NEGATIVE_INFINITY;
      for (const a of arrivals) {
        const at = a.get(s);
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
    const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}`;
    const row = {
      members: options.members,
      messages: options.messages,
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      lastP50: percentile(lastDelays, 50),
      lastP99: percentile(lastDelays, 99),
      deliveries: delays.length,
      missed,
    };
    console.log(
      [
        `Collaboration benchmark (one channel, one gateway, one collaboration subgraph on SQLite; members in the benchmark process; ${machine})`,
        '',
        '| members | messages | delivery after ack p50 / p99 (ms) | last member p50 / p99 (ms) | deliveries (missed) |',
        '|---:|---:|---:|---:|---:|',
        `| ${row.members.toLocaleString('en-US')} | ${row.messages} | ${f(row.p50)} / ${f(row.p99)} | ${f(row.lastP50)} / ${f(row.lastP99)} | ${row.deliveries.toLocaleString('en-US')} (${row.missed}) |`,
        '',
        'Delivery: from the sendMessage response reaching the sender to each member receiving the message (negative: the event beat the response).',
      ].join('\n'),
    );
    const results = fileURLToPath(new URL('./results/', import.meta.url));
    mkdirSync(results, { recursive: true });
    writeFileSync(join(results, `collaboration-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ options, machine, row }, null, 2));
  } finally {
    await Promise.allSettled(clients.map((c) => c.dispose()));
    for (const service of services.reverse()) await service.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
