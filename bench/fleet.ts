// `npm run bench:fleet`: one gateway with one replica of each subgraph against two gateways behind
// HAProxy with two replicas each (scripts/fleet.ts), on PostgreSQL and Redis, in one run: req/s
// and p99 of a read and a write, then a failure run on the fleet (a subgraph replica and then a
// gateway killed mid-run, failed requests counted). Figures in bench/README.md ("Fleet").
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dropFleetSchemas, type Fleet, startFleet } from '../scripts/fleet.ts';
import { measure, type Measurement } from './measure.ts';
import type { HttpCall } from './scenarios.ts';
import { seededRandom } from './scenarios.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    agents: { type: 'string', default: '50' },
  },
});
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);
const AGENTS = Number(values.agents);
const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;
if (!databaseUrl || !redisUrl) {
  console.error('bench:fleet needs DATABASE_URL and REDIS_URL (the fleet shares its data and events through them).');
  process.exit(2);
}

const READ = 'query FleetBenchRead($id: ID!) { agent(id: $id) { name status health } }';
const WRITE = 'mutation FleetBenchWrite($id: ID!) { recordHeartbeat(id: $id) { lastHeartbeatAt } }';

function call(query: string, ids: string[], random: () => number): HttpCall {
  const body = () => JSON.stringify({ query, variables: { id: ids[Math.floor(random() * ids.length)] } });
  return { method: 'POST', path: '/graphql', body: body(), nextBody: body };
}

async function seed(url: string, token: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `mutation { registerAgent(input: { name: "bench-${i}" }) { id } }` }),
    });
    const body = (await res.json()) as { data?: { registerAgent: { id: string } } };
    if (!body.data) throw new Error(`seeding failed: ${JSON.stringify(body)}`);
    ids.push(body.data.registerAgent.id);
  }
  return ids;
}

const pids = (fleet: Fleet) =>
  [...fleet.gateways, ...Object.values(fleet.replicas).flat()].map((p) => ({ name: p.name, pid: p.child().pid ?? 0 })).filter((w) => w.pid > 0);

interface Row {
  setup: string;
  scenario: string;
  result: Measurement;
}

async function run(setup: string, gateways: number, replicas: number, viaBalancer: boolean, rows: Row[], failureRun: boolean): Promise<void> {
  const prefix = `fleetbench${randomBytes(3).toString('hex')}_`;
  const workDir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const fleet = await startFleet({
    gateways,
    replicas,
    databaseUrl: databaseUrl!,
    redisUrl: redisUrl!,
    workDir,
    prefix,
    // The benchmark is one caller: rate limits would measure the limiter; logs go to files.
    gatewayEnv: { RATE_LIMIT_ENABLED: 'false', LOG_LEVEL: 'warn' },
  });
  try {
    const target = viaBalancer ? fleet.url : fleet.gateways[0]!.url;
    const baseUrl = target.replace(/\/graphql$/, '');
    const ids = await seed(target, fleet.token);
    const headers = { authorization: `Bearer ${fleet.token}` };
    for (const [scenario, query] of [
      ['read (agent by id)', READ],
      ['write (heartbeat)', WRITE],
    ] as const) {
      // Warm-up (JIT, connection pools, plans), not recorded: a fresh fleet is cold.
      await measure({ baseUrl, call: call(query, ids, seededRandom(3)), connections: CONNECTIONS, durationSeconds: 3, headers, watched: [] });
      const result = await measure({
        baseUrl,
        call: call(query, ids, seededRandom(7)),
        connections: CONNECTIONS,
        durationSeconds: DURATION,
        headers,
        watched: pids(fleet),
      });
      rows.push({ setup, scenario, result });
      console.log(`${setup.padEnd(40)}${scenario.padEnd(22)} ${result.requestsPerSecond} req/s  p99 ${result.p99} ms`);
    }
    if (failureRun) {
      // A read load for 3 × DURATION; a subgraph replica dies at a third, a gateway at two thirds.
      const agentsReplica = fleet.replicas.agents[0]!;
      const gateway = fleet.gateways[0]!;
      const killer = (async () => {
        await new Promise((resolve) => setTimeout(resolve, DURATION * 1000));
        await agentsReplica.kill();
        await new Promise((resolve) => setTimeout(resolve, DURATION * 1000));
        await gateway.kill();
      })();
      const result = await measure({
        baseUrl,
        call: call(READ, ids, seededRandom(11)),
        connections: CONNECTIONS,
        durationSeconds: DURATION * 3,
        headers,
        watched: [],
      });
      await killer;
      rows.push({ setup, scenario: 'read, replica + gateway killed', result });
      const f = result.failures;
      console.log(
        `${setup.padEnd(40)}failure run: ${result.completed} requests, ${f.errors} connection errors, ${f.timeouts} timeouts, ${f.non2xx} non-2xx, ${f.graphqlErrors} with GraphQL errors`,
      );
    }
  } finally {
    await fleet.stop();
    await dropFleetSchemas(databaseUrl!, prefix);
  }
}

const rows: Row[] = [];
console.log(`fleet benchmark: ${CONNECTIONS} connections, ${DURATION} s per measurement, ${AGENTS} agents, PostgreSQL + Redis`);
await run('1 gateway, 1 replica each', 1, 1, false, rows, false);
await run('HAProxy, 2 gateways, 2 replicas each', 2, 2, true, rows, true);

const single = (scenario: string) => rows.find((r) => r.setup.startsWith('1 gateway') && r.scenario === scenario)?.result;
console.log(`\n${'setup'.padEnd(40)}${'scenario'.padEnd(32)}${'req/s'.padStart(8)}${'p99 ms'.padStart(10)}   ratio req/s (fleet / single)`);
for (const row of rows) {
  const base = single(row.scenario);
  const ratio = base && row.setup.startsWith('HAProxy') ? (row.result.requestsPerSecond / base.requestsPerSecond).toFixed(2) : '';
  console.log(
    `${row.setup.padEnd(40)}${row.scenario.padEnd(32)}${String(row.result.requestsPerSecond).padStart(8)}${String(row.result.p99).padStart(10)}   ${ratio}`,
  );
}
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ connections: CONNECTIONS, durationSeconds: DURATION, agents: AGENTS, rows }, null, 2));
console.log(`\nresults: ${file}`);
