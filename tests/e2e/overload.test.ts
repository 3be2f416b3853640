// Admission control with real processes: a gateway whose limit is reached refuses the rest at
// once (503, Retry-After, OVERLOADED) on every transport, keeps a share for operators and agents,
// answers its probes on their own port throughout, and serves normally again once the load is gone.
// "Load" here is requests held in flight by a slow agents subgraph (a proxy that delays its answers),
// so the limit is reached with a handful of requests and nothing depends on the machine's speed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { bearer } from '../support/auth.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { getFreePort, gql, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';

manageProcesses();

// Limit 4, of which 1 (25 %) only for operators and agents: 3 standard requests fill the standard lane.
const LIMIT = 4;
const HELD_MS = 4_000;
const AGENTS_QUERY = 'query AgentCount { agents(first: 1) { totalCount } }';

let dataDir: string;
let platform: Platform;
let proxy: FaultProxy;
let healthPort: number;
let partner: Record<string, string>;
let operator: Record<string, string>;

const base = () => platform.url.replace(/\/graphql$/, '');

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-overload-'));
  const agentsPort = await getFreePort();
  proxy = await startFaultProxy(agentsPort);
  healthPort = await getFreePort();
  platform = await startPlatform({
    dataDir,
    ports: { agents: agentsPort },
    subgraphUrls: { agents: proxy.url },
    gatewayEnv: {
      ADMISSION: 'fixed',
      ADMISSION_LIMIT: String(LIMIT),
      ADMISSION_RESERVED_PERCENT: '25',
      ADMISSION_QUEUE: '2',
      ADMISSION_QUEUE_TIMEOUT_MS: '100',
      ADMISSION_RETRY_AFTER_SECONDS: '2',
      HEALTH_PORT: String(healthPort),
      // Held requests must outlive the subgraph deadline, not be cut by it.
      SUBGRAPH_TIMEOUT_MS: '20000',
    },
  });
  // Every scope but admin: a partner's token, in the standard lane.
  partner = await bearer({ subject: 'partner@test', scopes: PLATFORM_SCOPES.filter((s) => s !== 'admin') });
  operator = await bearer({ subject: 'operator@test' });
});

afterAll(async () => {
  await platform?.stop();
  await proxy?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Starts `count` requests the slow subgraph holds in flight for HELD_MS; resolves to their statuses. */
function hold(count: number, headers: Record<string, string>): Promise<number[]> {
  return Promise.all(Array.from({ length: count }, () => gql(platform.url, AGENTS_QUERY, {}, headers).then((r) => r.status)));
}

/** Until a request of this caller is refused: the lane is full (the held requests arrived). */
async function untilRefused(headers: Record<string, string>): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const result = await gql(platform.url, '{ __typename }', {}, headers);
    if (result.status === 503) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the gateway never refused: the held requests did not fill the limit');
}

describe('admission control', () => {
  it('refuses past the limit at once with 503, Retry-After and OVERLOADED, while the admitted are served', async () => {
    proxy.set({ kind: 'delay', ms: HELD_MS });
    const held = hold(3, partner);
    await untilRefused(partner);
    // A burst while the standard lane is full: two wait in the queue (and time out), the rest are refused at once.
    const burst = await Promise.all(Array.from({ length: 12 }, () => gql(platform.url, '{ __typename }', {}, partner)));
    for (const refused of burst) {
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('2');
      expect(refused.errors).toEqual([expect.objectContaining({ extensions: { code: 'OVERLOADED' } })]);
    }
    expect(await held).toEqual([200, 200, 200]);
    proxy.set({ kind: 'pass' });
  });

  it('lets an operator in while partners are refused (the reserved share)', async () => {
    proxy.set({ kind: 'delay', ms: HELD_MS });
    const held = hold(3, partner);
    await untilRefused(partner);
    const asOperator = await gql(platform.url, '{ __typename }', {}, operator);
    expect(asOperator.status).toBe(200);
    expect(asOperator.data).toEqual({ __typename: 'Query' });
    expect(await held).toEqual([200, 200, 200]);
    proxy.set({ kind: 'pass' });
  });

  it('at the full limit: REST answers problem+json 503, SSE and WebSocket refuse new streams, the probes port answers', async () => {
    proxy.set({ kind: 'delay', ms: HELD_MS });
    const held = Promise.all([hold(3, partner), hold(1, operator)]);
    await untilRefused(operator);

    const rest = await fetch(`${base()}/v1/agents`, { headers: partner });
    expect(rest.status).toBe(503);
    expect(rest.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(rest.headers.get('retry-after')).toBe('2');
    expect(await rest.json()).toMatchObject({ status: 503, code: 'OVERLOADED' });

    const sse = await fetch(`${base()}/graphql/stream`, {
      method: 'POST',
      headers: { ...partner, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { __typename }' }),
    });
    expect(sse.status).toBe(503);
    await sse.body?.cancel();

    const socket = new WebSocket(platform.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: partner.authorization } })));
    expect(await closed).toEqual({ code: 1013, reason: 'Overloaded: try again later' });

    const health = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await fetch(`http://127.0.0.1:${healthPort}/graphql`).then((r) => r.status)).toBe(404);

    expect(await held).toEqual([[200, 200, 200], [200]]);
    proxy.set({ kind: 'pass' });
  });

  it('serves normally once the load is gone, and counts what it admitted and shed', async () => {
    const after = await gql(platform.url, AGENTS_QUERY, {}, partner);
    expect(after.status).toBe(200);
    expect(after.errors).toBeUndefined();
    const metrics = await fetch(`${base()}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(new RegExp(`^gateway_admission_limit\\{[^}]*\\} ${LIMIT}$`, 'm'));
    const shed = Number(/^gateway_admission_shed_total\{[^}]*reason="queue_full"[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    expect(shed).toBeGreaterThanOrEqual(10);
    expect(metrics).toMatch(/^gateway_admission_admitted_total\{[^}]*lane="reserved"[^}]*\} [1-9]/m);
  });
});
