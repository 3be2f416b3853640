// `npm run bench:webhooks`: the memory and integrations subgraphs on SQLite in this process (one
// in-process bus, as `npm start`), 10 webhook endpoints served by receivers in this process that
// verify every signature with `standardwebhooks`. N memories are written in batches of 100 (N
// MemoryRemembered events, spread over 10 namespaces); endpoint k asks for namespace k, so each
// event is delivered to exactly one endpoint. Prints deliveries per second (from the first write
// to the last delivery), end-to-end latency (the event's occurredAt to the receiver), and the
// duplicates and losses counted by message id. Figures: bench/README.md, "Webhooks".
//
//   npm run bench:webhooks                    10,000 events, 10 endpoints
//   npm run bench:webhooks -- --events 2000
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Webhook } from 'standardwebhooks';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { createEventBus } from '../runtime/events.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES } from '../runtime/identity.ts';
import { createLogger } from '../runtime/logger.ts';
import { startSubgraph } from '../runtime/subgraph.ts';
import { integrations } from '../subgraphs/integrations/index.ts';
import { memory } from '../subgraphs/memory/index.ts';

const ENDPOINTS = 10;
const TIMEOUT_MS = 50_000;

function parseEvents(argv: string[]): number {
  if (argv.length === 0) return 10_000;
  const n = Number(argv[1]);
  if (argv[0] !== '--events' || !Number.isInteger(n) || n < ENDPOINTS) throw new Error('usage: npm run bench:webhooks -- [--events 10000]');
  return n;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Receiver {
  server: Server;
  url: string;
  secret: string;
  received: { id: string; latencyMs: number; at: number }[];
  rejected: number;
}

async function receiver(): Promise<Receiver> {
  const r: Receiver = { server: createServer(), url: '', secret: '', received: [], rejected: 0 };
  r.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      try {
        const body = new Webhook(r.secret).verify(raw, {
          'webhook-id': String(req.headers['webhook-id']),
          'webhook-timestamp': String(req.headers['webhook-timestamp']),
          'webhook-signature': String(req.headers['webhook-signature']),
        }) as { timestamp: string };
        const now = Date.now();
        r.received.push({ id: String(req.headers['webhook-id']), latencyMs: now - Date.parse(body.timestamp), at: performance.now() });
        res.writeHead(204).end();
      } catch {
        r.rejected += 1;
        res.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', () => resolve()));
  r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}/hook`;
  return r;
}

async function main(): Promise<void> {
  const events = parseEvents(process.argv.slice(2));
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-webhooks-'));
  const env = {
    ...process.env,
    DATA_DIR: dataDir,
    DATABASE_URL: '',
    REDIS_URL: '',
    LOG_LEVEL: 'warn',
    MEMORY_PORT: '0',
    INTEGRATIONS_PORT: '0',
    INTEGRATIONS_ALLOWED_NETWORKS: '127.0.0.0/8',
    INTEGRATIONS_POLL_INTERVAL_MS: '200',
  };
  const bus = createEventBus({ channelPrefix: 'bench', logger: createLogger('bench', 'warn') });
  const mem = await startSubgraph(memory, env, { bus });
  const int = await startSubgraph(integrations, { ...env, SUBGRAPH_MEMORY_URL: mem.url }, { bus });
  const identity = createIdentityService(loadIdentityConfig(env));
  const call = async (url: string, audience: string, query: string, variables: Record<string, unknown>) => {
    const token = await identity.signIdentity({ kind: 'user', subject: 'bench', tenantId: DEFAULT_TENANT, scopes: PLATFORM_SCOPES, agentId: null }, audience);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-gateway-identity': token },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors).slice(0, 500));
    return body.data as Record<string, unknown>;
  };
  const receivers: Receiver[] = [];
  try {
    for (let k = 0; k < ENDPOINTS; k++) {
      const r = await receiver();
      const data = await call(int.url, 'integrations', 'mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }', {
        input: { url: r.url, eventTypes: ['MemoryRemembered'], filter: `data.namespace = "shared/bench/${k}"` },
      });
      r.secret = (data.createWebhookEndpoint as { secret: string }).secret;
      receivers.push(r);
    }
    const started = performance.now();
    for (let i = 0; i < events; i += 100) {
      const inputs = Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
        namespace: `shared/bench/${(i + j) % ENDPOINTS}`,
        text: `event ${i + j}`,
      }));
      await call(mem.url, 'memory', 'mutation($inputs: [RememberInput!]!) { rememberBatch(inputs: $inputs) { id } }', { inputs });
    }
    const written = performance.now() - started;
    const unique = () => receivers.reduce((n, r) => n + new Set(r.received.map((x) => x.id)).size, 0);
    while (unique() < events && performance.now() - started < TIMEOUT_MS) await new Promise((resolve) => setTimeout(resolve, 50));
    // A moment more for late duplicates.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const all = receivers.flatMap((r) => r.received);
    const delivered = unique();
    const last = Math.max(...all.map((x) => x.at));
    const latencies = all.map((x) => x.latencyMs).sort((a, b) => a - b);
    console.log(`\nwebhooks: memory + integrations subgraphs on SQLite in one process, ${events} events to ${ENDPOINTS} endpoints (each event to one)\n`);
    console.log(`events written in ${(written / 1000).toFixed(1)} s (${Math.round(events / (written / 1000))} events/s)`);
    console.log('| deliveries | per second | latency p50 ms | latency p99 ms | duplicates | lost | bad signatures |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(
      `| ${all.length} | ${Math.round(delivered / ((last - started) / 1000))} | ${percentile(latencies, 50)} | ${percentile(latencies, 99)} | ${all.length - delivered} | ${events - delivered} | ${receivers.reduce((n, r) => n + r.rejected, 0)} |`,
    );
  } finally {
    await int.stop();
    await mem.stop();
    await bus.close();
    for (const r of receivers) {
      r.server.closeAllConnections();
      r.server.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
