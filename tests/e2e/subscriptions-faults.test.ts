// Subscriptions when things go wrong, with real processes and real sockets: clients that leave
// (1,000 times), a subgraph that restarts, an entity subgraph that is down for one event, clients
// that stop reading or stop answering pings, and the gateway shutting down.
import { defaultAuthorization } from '../support/auth.ts';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { gqlOk, manageProcesses, startGatewayProcess, startPlatform, subgraphsOf, type Platform, type ServiceProcess } from '../support/processes.ts';
import { gatewayStats, subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient } from '../subscriptions/support.ts';

manageProcesses();

const QUEUE_LIMIT = 20;
const MAX_BUFFERED_BYTES = 65_536;
// Long enough that a client paused on purpose (slow-consumer tests) is not dropped for missing
// pings first; the ping test runs its own gateway with a short interval.
const KEEPALIVE_MS = 60_000;

let dataDir: string;
let platform: Platform;
let client: Client;
let agentId: string;
const tag = 'faults';

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-subscription-faults-'));
  platform = await startPlatform({
    dataDir,
    gatewayEnv: {
      SUBSCRIPTION_QUEUE_LIMIT: String(QUEUE_LIMIT),
      SUBSCRIPTION_MAX_BUFFERED_BYTES: String(MAX_BUFFERED_BYTES),
      SUBSCRIPTION_KEEPALIVE_MS: String(KEEPALIVE_MS),
      SUBGRAPH_TIMEOUT_MS: '3000',
    },
  });
  client = wsClient(platform.url);
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    `mutation { registerAgent(input: { name: "Fault worker", skills: [{ id: "f", name: "Faults", tags: ["${tag}"] }] }) { id } }`,
  );
  agentId = registerAgent.id;
  await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: agentId });
});

afterAll(async () => {
  await client?.dispose();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function submitAndClaim(input?: unknown): Promise<string> {
  const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(platform.url, `mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }`, {
    input: { title: 'Fault task', requiredSkillTags: [tag], input },
  });
  const { claimTask } = await gqlOk<{ claimTask: { id: string } | null }>(
    platform.url,
    `mutation($a: ID!) { claimTask(agentId: $a, skillTags: ["${tag}"]) { id } }`,
    { a: agentId },
  );
  expect(claimTask?.id).toBe(submitTask.id);
  return submitTask.id;
}

const progress = (taskId: string, percent: number) =>
  gqlOk(platform.url, `mutation($t: ID!, $a: ID!, $p: Int!) { reportTaskProgress(taskId: $t, agentId: $a, percent: $p) { id } }`, {
    t: taskId,
    a: agentId,
    p: percent,
  });

const TASK_EVENTS = `subscription($t: ID) { taskUpdated(taskId: $t) { kind task { progress { percent } agent { name } } } }`;

async function released(): Promise<void> {
  await waitFor('every subscription released at the gateway and in orchestration', async () => {
    const stats = await gatewayStats(platform.url);
    const upstream = subgraphOpenSubscriptions(platform.orchestration);
    return (
      stats.clientSubscriptions === 0 &&
      stats.sharedStreams === 0 &&
      stats.upstreamSubscriptions === 0 &&
      upstream.open === 0 &&
      upstream.opened === upstream.closed
    );
  });
}

describe('clients that leave', () => {
  it('releases the upstream subscription every time: 1,000 subscribe/unsubscribe cycles leave nothing open', async () => {
    // 500 that leave at once, racing their own subscription on its way to the subgraph...
    for (let round = 0; round < 10; round++) {
      const subs = Array.from({ length: 50 }, () => subscribe(client, { query: TASK_EVENTS, variables: { t: randomUUID() } }));
      for (const s of subs) s.unsubscribe();
    }
    await released();
    // ...and 500 that leave once the subgraph listens for them.
    for (let round = 0; round < 10; round++) {
      const before = subgraphOpenSubscriptions(platform.orchestration).opened;
      const subs = Array.from({ length: 50 }, () => subscribe(client, { query: TASK_EVENTS, variables: { t: randomUUID() } }));
      await subgraphSubscribed(platform.orchestration, before, 50);
      expect(await gatewayStats(platform.url)).toMatchObject({ clientSubscriptions: 50, upstreamSubscriptions: 50 });
      expect(subgraphOpenSubscriptions(platform.orchestration).open).toBe(50);
      for (const s of subs) s.unsubscribe();
    }
    await released();
    expect(subgraphOpenSubscriptions(platform.orchestration).opened).toBeGreaterThanOrEqual(500);

    // The machinery is intact afterwards.
    const taskId = await submitAndClaim();
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const live = subscribe(client, { query: TASK_EVENTS, variables: { t: taskId } });
    await subgraphSubscribed(platform.orchestration, before);
    await progress(taskId, 10);
    expect((await live.next()).data).toMatchObject({ taskUpdated: { kind: 'STATE_CHANGED' } });
    live.unsubscribe();
    await released();
  });
});

describe('subgraph failures', () => {
  it('the owning subgraph going away ends the subscription with an error, then complete; it works again once back', async () => {
    const taskId = await submitAndClaim();
    let before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const sub = subscribe(client, { query: TASK_EVENTS, variables: { t: taskId } });
    await subgraphSubscribed(platform.orchestration, before);

    await platform.orchestration.stop();
    const last = await sub.next();
    expect(last).toEqual({
      errors: [
        {
          message: expect.stringMatching(/^Subgraph "orchestration" is unavailable: connection closed \(1001/),
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration' },
        },
      ],
    });
    expect(await sub.ended).toEqual({ kind: 'complete' });

    // While it is down, a new subscription is told so at once instead of hanging.
    const started = Date.now();
    const refused = subscribe(client, { query: TASK_EVENTS, variables: { t: taskId } });
    expect(await refused.next()).toEqual({
      errors: [
        {
          message: expect.stringMatching(/^Subgraph "orchestration" is unavailable: .*ECONNREFUSED/),
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration' },
        },
      ],
    });
    expect(await refused.ended).toEqual({ kind: 'complete' });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await gatewayStats(platform.url)).toMatchObject({ clientSubscriptions: 0, upstreamSubscriptions: 0 });

    await platform.orchestration.restart();
    before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const again = subscribe(client, { query: TASK_EVENTS, variables: { t: taskId } });
    await subgraphSubscribed(platform.orchestration, before);
    await progress(taskId, 20);
    expect((await again.next()).data).toEqual({ taskUpdated: { kind: 'STATE_CHANGED', task: { progress: { percent: 20 }, agent: { name: 'Fault worker' } } } });
    again.unsubscribe();
    await released();
  });

  it('an entity subgraph failing for one event gives that event partial data and an error; the stream goes on', async () => {
    const taskId = await submitAndClaim();
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const sub = subscribe(client, { query: TASK_EVENTS, variables: { t: taskId } });
    await subgraphSubscribed(platform.orchestration, before);

    await platform.agents.stop();
    await progress(taskId, 30);
    expect(await sub.next()).toEqual({
      data: { taskUpdated: { kind: 'STATE_CHANGED', task: { progress: { percent: 30 }, agent: null } } },
      errors: [
        {
          message: expect.stringMatching(/^Subgraph "agents" is unavailable: .*ECONNREFUSED/),
          extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
        },
      ],
    });
    expect((await sub.next()).errors?.[0]?.extensions).toMatchObject({ serviceName: 'agents' }); // PROGRESS_REPORTED

    await platform.agents.restart();
    await progress(taskId, 40);
    expect(await sub.next()).toEqual({
      data: { taskUpdated: { kind: 'PROGRESS_REPORTED', task: { progress: { percent: 40 }, agent: { name: 'Fault worker' } } } },
    });
    sub.unsubscribe();
    await released();
  });
});

/** A graphql-transport-ws connection without a client library, to misbehave on purpose. */
async function rawSocket(
  options: WebSocket.ClientOptions = {},
  url = platform.url,
): Promise<{ socket: WebSocket; closed: Promise<{ code: number; reason: string }>; messages: unknown[] }> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws', options);
  const messages: unknown[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: await defaultAuthorization() } }));
  await waitFor('connection_ack', () => messages.some((m) => (m as { type: string }).type === 'connection_ack'));
  return { socket, closed, messages };
}

describe('connections', () => {
  it('closes a WebSocket client that stops reading with 1013 instead of buffering without bound', async () => {
    const taskId = await submitAndClaim({ blob: 'x'.repeat(100_000) });
    const { socket, closed } = await rawSocket();
    // Ten aliases of the 100 KB input make every event about 1 MB.
    const fields = Array.from({ length: 10 }, (_, i) => `i${i}: input`).join(' ');
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: `subscription($t: ID) { taskUpdated(taskId: $t) { task { ${fields} } } }`, variables: { t: taskId } },
      }),
    );
    await subgraphSubscribed(platform.orchestration, before);
    socket.pause();
    let sent = 0;
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      (async () => {
        // Far more than the socket buffers and the queue limit hold.
        for (; sent < 80; sent++) await progress(taskId, sent % 100);
        return 'all sent';
      })(),
    ]);
    socket.resume();
    expect(await closed).toEqual({ code: 1013, reason: 'consumer too slow' });
    expect(['closed', 'all sent']).toContain(outcome);
    await waitFor('the slow client released', async () => (await gatewayStats(platform.url)).clientSubscriptions === 0);
    expect(platform.gateway.jsonLogs().some((l) => l.msg === 'WebSocket client too slow; closing its connection' && l.code === 1013)).toBe(true);
    await released();
  });

  it('closes an SSE client that stops reading once its send buffer is full', async () => {
    const taskId = await submitAndClaim({ blob: 'y'.repeat(100_000) });
    const fields = Array.from({ length: 10 }, (_, i) => `i${i}: input`).join(' ');
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const body = JSON.stringify({ query: `subscription($t: ID) { taskUpdated(taskId: $t) { task { ${fields} } } }`, variables: { t: taskId } });
    const authorization = await defaultAuthorization();
    const ended = new Promise<string>((resolve) => {
      const req = request(
        platform.url.replace(/\/graphql$/, '/graphql/stream'),
        { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization } },
        (res) => {
          res.pause(); // never read
          res.on('close', () => resolve('closed'));
          res.on('error', () => resolve('closed'));
        },
      );
      req.on('error', () => resolve('closed'));
      req.end(body);
    });
    await subgraphSubscribed(platform.orchestration, before);
    let finished = false;
    void ended.then(() => (finished = true));
    for (let i = 0; i < 80 && !finished; i++) await progress(taskId, i % 100);
    await waitFor('the slow SSE stream closed', async () => (await gatewayStats(platform.url)).sseConnections === 0);
    expect(platform.gateway.jsonLogs().some((l) => l.msg === 'SSE client too slow; closing its stream')).toBe(true);
    await released();
  });
});

describe('keep-alive (a second gateway with a short interval)', () => {
  const keepAliveMs = 300;
  let gateway: ServiceProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      name: 'gateway-keepalive',
      subgraphs: subgraphsOf(platform),
      env: { SUBSCRIPTION_KEEPALIVE_MS: String(keepAliveMs), SUBGRAPH_TIMEOUT_MS: '1000' },
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('pings clients, and drops one that stops answering', async () => {
    const alive = await rawSocket({}, gateway.url);
    let pings = 0;
    alive.socket.on('ping', () => (pings += 1));
    const mute = await rawSocket({ autoPong: false }, gateway.url);
    await new Promise((r) => setTimeout(r, keepAliveMs * 4));
    expect(pings).toBeGreaterThanOrEqual(2);
    expect(alive.socket.readyState).toBe(WebSocket.OPEN);
    // Terminated by the gateway: no closing handshake, so the client sees an abnormal closure.
    expect((await mute.closed).code).toBe(1006);
    alive.socket.close();
  });

  it('ends subscriptions held by a frozen subgraph once it misses a pong, instead of hanging', async () => {
    const taskId = await submitAndClaim();
    const keepAliveClient = wsClient(gateway.url);
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const sub = subscribe(keepAliveClient, { query: TASK_EVENTS, variables: { t: taskId } });
    await subgraphSubscribed(platform.orchestration, before);
    platform.orchestration.kill('SIGSTOP');
    try {
      const last = await sub.next(10_000);
      expect(last).toEqual({
        errors: [
          {
            message: 'Subgraph "orchestration" is unavailable: connection closed (1006 abnormal closure)',
            extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orchestration' },
          },
        ],
      });
      expect(await sub.ended).toEqual({ kind: 'complete' });
      // The log line travels through a pipe, which may deliver it after the client saw the end.
      await expect.poll(() => gateway.jsonLogs().some((l) => l.msg === 'upstream WebSocket did not answer a ping; dropping it')).toBe(true);
    } finally {
      platform.orchestration.kill('SIGCONT');
      await keepAliveClient.dispose();
    }
    expect((await gatewayStats(gateway.url)).upstreamSubscriptions).toBe(0);
    // Thawed, the subgraph finds the connection gone and releases its side too.
    await released();
  });
});

describe('gateway shutdown', () => {
  it('closes WebSockets with 1001 and ends SSE streams with SHUTTING_DOWN', async () => {
    const taskId = await submitAndClaim();
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const { socket, closed } = await rawSocket();
    socket.send(JSON.stringify({ id: 'a', type: 'subscribe', payload: { query: TASK_EVENTS, variables: { t: taskId } } }));
    const sse = await fetch(platform.url.replace(/\/graphql$/, '/graphql/stream'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: await defaultAuthorization() },
      body: JSON.stringify({ query: TASK_EVENTS, variables: { t: taskId } }),
    });
    await subgraphSubscribed(platform.orchestration, before, 1); // identical: one shared upstream
    expect(await gatewayStats(platform.url)).toMatchObject({ clientSubscriptions: 2, webSocketConnections: 1, sseConnections: 1 });

    const started = Date.now();
    const exit = await platform.gateway.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await closed).toEqual({ code: 1001, reason: 'Going away' });
    const stream = await sse.text();
    expect(stream).toContain(
      `event: next\ndata: ${JSON.stringify({ errors: [{ message: 'The gateway is shutting down; subscribe again', extensions: { code: 'SHUTTING_DOWN' } }] })}`,
    );
    expect(stream).toMatch(/event: complete\n/);
    // The subgraph saw its subscriber go.
    await waitFor('orchestration released the upstream subscription', () => subgraphOpenSubscriptions(platform.orchestration).open === 0);
  });
});
