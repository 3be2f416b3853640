// `npm run fleet -- --check`: what a client of a fleet must see, checked against a running one
// (scripts/fleet.ts). Every step throws with what went wrong; the caller stops the fleet.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { Fleet, FleetProcess } from './fleet.ts';

interface Answer {
  status: number;
  body: { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: { code?: string } }[] };
}

async function post(url: string, token: string, query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

function ok(answer: Answer, what: string): Record<string, unknown> {
  if (answer.status !== 200 || answer.body.errors?.length || !answer.body.data)
    throw new Error(`${what}: HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 500)}`);
  return answer.body.data;
}

const READ = 'query FleetRead { agents(first: 5) { totalCount } tasks(first: 5) { totalCount } }';

/** `count` reads through `url`, `concurrency` at a time; the failures, described. */
async function reads(url: string, token: string, count: number, concurrency = 8): Promise<string[]> {
  const failures: string[] = [];
  let left = count;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) {
        try {
          ok(await post(url, token, READ), 'read');
        } catch (err) {
          failures.push(err instanceof Error ? err.message : String(err));
        }
      }
    }),
  );
  return failures;
}

/** Requests a process has logged (pino `request` lines). */
function requestsLogged(p: FleetProcess): number {
  return readFileSync(p.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"msg":"request"')).length;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function checkFleet(fleet: Fleet, say: (line: string) => void): Promise<void> {
  const [first, second] = fleet.gateways;
  if (!first || !second) throw new Error('the check needs two gateways');

  // 1. A write through the balancer is read back through every gateway at once.
  const key = randomUUID();
  const register = 'mutation FleetRegister($name: String!) { registerAgent(input: { name: $name }) { id name } }';
  const registered = ok(await post(fleet.url, fleet.token, register, { name: `fleet-${key.slice(0, 8)}` }, { 'idempotency-key': key }), 'register');
  const agent = registered.registerAgent as { id: string; name: string };
  // The same key again: the same agent, nothing new.
  const repeated = ok(await post(fleet.url, fleet.token, register, { name: agent.name }, { 'idempotency-key': key }), 'register again');
  if ((repeated.registerAgent as { id: string }).id !== agent.id) throw new Error('a repeated Idempotency-Key created a second agent');
  for (const gateway of fleet.gateways) {
    const read = ok(await post(gateway.url, fleet.token, 'query FleetAgent($id: ID!) { agent(id: $id) { id } }', { id: agent.id }), `read on ${gateway.name}`);
    if ((read.agent as { id: string } | null)?.id !== agent.id) throw new Error(`${gateway.name} does not see the agent written through the balancer`);
  }
  say('ok  a write through HAProxy is read back on every gateway; a repeated Idempotency-Key creates nothing');

  // 2. A subscription on one gateway sees the event of a write made through the other.
  const ws = createClient({
    url: first.url.replace('http', 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${fleet.token}` },
    retryAttempts: 0,
  });
  try {
    const event = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no agentStatusChanged event within 15 s')), 15_000);
      ws.subscribe<{ agentStatusChanged: { to: string } }>(
        { query: `subscription FleetStatus { agentStatusChanged(agentId: "${agent.id}") { to } }` },
        {
          next: (value) => {
            clearTimeout(timer);
            resolve(value.data?.agentStatusChanged.to ?? JSON.stringify(value.errors));
          },
          error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
          complete: () => undefined,
        },
      );
    });
    // graphql-ws confirms nothing on subscribe: give the upstream subscription a moment to start.
    await sleep(1_000);
    ok(await post(second.url, fleet.token, 'mutation FleetActivate($id: ID!) { activateAgent(id: $id) { status } }', { id: agent.id }), 'activate');
    const to = await event;
    if (to !== 'ACTIVE') throw new Error(`the subscriber saw ${to}, expected ACTIVE`);
  } finally {
    await ws.dispose();
  }
  say(`ok  a subscriber on ${first.name} sees the change made through ${second.name} (Redis carries the event)`);

  // 3. A subgraph replica dies under load: no query fails; restarted, it takes traffic again.
  const victim = fleet.replicas.agents[0];
  if (!victim || fleet.replicas.agents.length < 2) throw new Error('the check needs two replicas of agents');
  const load = reads(fleet.url, fleet.token, 600);
  await sleep(300);
  await victim.kill();
  const failedDuringKill = await load;
  if (failedDuringKill.length > 0) throw new Error(`${failedDuringKill.length} reads failed while ${victim.name} died: ${failedDuringKill[0]}`);
  await victim.restart();
  const before = requestsLogged(victim);
  const deadline = Date.now() + 30_000;
  while (requestsLogged(victim) === before && Date.now() < deadline) {
    const failures = await reads(fleet.url, fleet.token, 40);
    if (failures.length > 0) throw new Error(`reads failed after ${victim.name} restarted: ${failures[0]}`);
  }
  if (requestsLogged(victim) === before) throw new Error(`${victim.name} got no traffic within 30 s of its restart`);
  say(`ok  ${victim.name} killed under load: 600 reads, none failed; restarted, it took traffic again`);

  // 4. A gateway dies: HAProxy takes it out; once it has, nothing fails.
  await first.kill();
  await sleep(3_000);
  const afterGatewayDeath = await reads(fleet.url, fleet.token, 200);
  if (afterGatewayDeath.length > 0) throw new Error(`${afterGatewayDeath.length} reads failed after ${first.name} died: ${afterGatewayDeath[0]}`);
  await first.restart();
  say(`ok  ${first.name} killed: HAProxy routes around it (200 reads, none failed); restarted`);

  // 5. Everything stops cleanly on SIGTERM.
  for (const p of [...fleet.gateways, ...Object.values(fleet.replicas).flat()]) {
    const code = await p.stop();
    if (code !== 0) throw new Error(`${p.name} exited with ${code} on SIGTERM`);
  }
  say('ok  every gateway and replica stops with exit code 0 on SIGTERM');
}
