// A subgraph killed (SIGKILL) between the commit of a change and the publish of its event: the
// event is in the outbox, so it still reaches subscribers, exactly once: a subscriber that
// resumes with its last sequence through the gateway after the restart (any database), and a
// subscriber held by another replica that stayed up (PostgreSQL + Redis). The kill comes from a
// test hook honoured only with NODE_ENV=test (TEST_CRASH_AFTER_COMMIT_OF).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema, REDIS_URL } from '../support/databases.ts';
import { gql, gqlOk, manageProcesses, startPlatform, startProcess, getFreePort, type Platform, type ServiceProcess } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, wsClient, type Result } from '../subscriptions/support.ts';

manageProcesses();

const HEARTBEATS = `subscription ($a: ID, $after: SafeInt) { agentHeartbeat(agentId: $a, afterSequence: $after) { eventId sequence agent { name } } }`;

interface Heartbeat {
  eventId: string;
  sequence: number;
  agent: { name: string };
}

const heartbeat = (r: Result): Heartbeat => {
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return (r.data as { agentHeartbeat: Heartbeat }).agentHeartbeat;
};

const CRASH_HOOK = { NODE_ENV: 'test', TEST_CRASH_AFTER_COMMIT_OF: 'AgentHeartbeat' };

describe('an event committed by a subgraph killed before publishing it', () => {
  const prefix = `e2e${randomBytes(4).toString('hex')}_`;
  const shared = { DATABASE_SCHEMA_PREFIX: prefix, EVENT_CHANNEL_PREFIX: prefix, LOG_LEVEL: 'info' };
  const dataDir = mkdtempSync(join(tmpdir(), 'e2e-outbox-crash-'));
  let platform: Platform | undefined;
  const extra: ServiceProcess[] = [];
  let client: Client | undefined;

  afterEach(async () => {
    await client?.dispose();
    for (const p of extra.splice(0)) await p.stop();
    await platform?.stop();
    platform = undefined;
    for (const name of ['agents', 'orchestration', 'governance']) await dropSchema(`${prefix}${name}`);
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  /** An agents subgraph on the platform's data, on `port` (the one the gateway calls). */
  const agentsProcess = (name: string, port: number, env: Record<string, string> = {}) =>
    startProcess({
      name,
      args: ['scripts/subgraph.ts', 'agents'],
      port,
      env: { ...shared, ...TEST_SECURITY_ENV, DATA_DIR: dataDir, AGENTS_PORT: String(port), ...env },
    });

  it(`reaches a subscriber that resumes after the restart, once (${DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, async () => {
    platform = await startPlatform({ dataDir, env: shared });
    client = wsClient(platform.url);
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
      platform.url,
      `mutation { registerAgent(input: { name: "Crashy", skills: [{ id: "c", name: "C", tags: ["c"] }] }) { id } }`,
    );
    const agentId = registerAgent.id;
    const beat = () => gql(platform?.url ?? '', `mutation ($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id: agentId });

    let before = subgraphOpenSubscriptions(platform.agents).opened;
    const first = subscribe(client, { query: HEARTBEATS, variables: { a: agentId } });
    await subgraphSubscribed(platform.agents, before);
    expect((await beat()).status).toBe(200);
    const seen = heartbeat(await first.next());
    first.unsubscribe();

    // The same data, served by a process that dies right after committing the next heartbeat.
    const port = platform.agents.port;
    await platform.agents.stop();
    const doomed = await agentsProcess('agents-doomed', port, CRASH_HOOK);
    extra.push(doomed);
    const crashed = await beat();
    expect(crashed.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE'); // never acknowledged…
    expect((await doomed.exited()).signal).toBe('SIGKILL');
    expect(doomed.logs()).toMatch(/killing this process after commit, before publish/);

    const revived = await agentsProcess('agents-revived', port);
    extra.push(revived);
    // …but committed: at start the relay publishes what the killed process could not.
    expect(revived.jsonLogs().find((l) => l.msg === 'outbox relay published events nobody had published')).toMatchObject({ events: 1 });

    before = subgraphOpenSubscriptions(revived).opened;
    const resumed = subscribe(client, { query: HEARTBEATS, variables: { a: agentId, after: seen.sequence } });
    const missed = heartbeat(await resumed.next());
    await subgraphSubscribed(revived, before);
    expect((await beat()).status).toBe(200);
    const live = heartbeat(await resumed.next());
    expect([missed.sequence, live.sequence]).toEqual([seen.sequence + 1, seen.sequence + 2]);
    expect(new Set([seen.eventId, missed.eventId, live.eventId]).size).toBe(3);
    // Once: nothing else was delivered before a further live event.
    await beat();
    expect(heartbeat(await resumed.next()).sequence).toBe(seen.sequence + 3);
    expect(resumed.buffered).toHaveLength(0);
    resumed.unsubscribe();
  });

  it('ignores the crash hook outside NODE_ENV=test', async () => {
    const port = await getFreePort();
    const agents = await agentsProcess('agents-not-test', port, { NODE_ENV: 'development', TEST_CRASH_AFTER_COMMIT_OF: 'AgentRegistered' });
    extra.push(agents);
    const asGateway = await identityHeaders('agents');
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
      agents.url,
      `mutation { registerAgent(input: { name: "Safe", skills: [{ id: "s", name: "S", tags: ["s"] }] }) { id } }`,
      undefined,
      asGateway,
    );
    // Still alive after the commit of an AgentRegistered event.
    const read = await gqlOk<{ agent: { name: string } }>(agents.url, `query ($id: ID!) { agent(id: $id) { name } }`, { id: registerAgent.id }, asGateway);
    expect(read.agent.name).toBe('Safe');
    expect(agents.logs()).not.toMatch(/killing this process/);
  });

  it.skipIf(!(DATABASE_URL && REDIS_URL))(
    `reaches a live subscriber held by another replica, once (PostgreSQL + Redis)${DATABASE_URL && REDIS_URL ? '' : ' (skipped: DATABASE_URL and REDIS_URL must both be set)'}`,
    async () => {
      platform = await startPlatform({ dataDir, env: shared });
      client = wsClient(platform.url);
      const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
        platform.url,
        `mutation { registerAgent(input: { name: "Replicated", skills: [{ id: "r", name: "R", tags: ["r"] }] }) { id } }`,
      );
      const agentId = registerAgent.id;
      const before = subgraphOpenSubscriptions(platform.agents).opened;
      const sub = subscribe(client, { query: HEARTBEATS, variables: { a: agentId } });
      await subgraphSubscribed(platform.agents, before);

      // Replica 2 takes the heartbeat directly and dies after committing it.
      const doomed = await agentsProcess('agents-replica-doomed', await getFreePort(), CRASH_HOOK);
      extra.push(doomed);
      const asGateway = await identityHeaders('agents');
      await gql(doomed.url, `mutation ($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id: agentId }, asGateway).catch(() => undefined);
      expect((await doomed.exited()).signal).toBe('SIGKILL');

      // Replica 1's relay publishes it (after its grace period for the writer).
      const relayed = heartbeat(await sub.next(30_000));
      await gqlOk(platform.url, `mutation ($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id: agentId });
      const next = heartbeat(await sub.next());
      expect(next.sequence).toBe(relayed.sequence + 1);
      expect(next.eventId).not.toBe(relayed.eventId);
      expect(sub.buffered).toHaveLength(0);
      sub.unsubscribe();
    },
  );
});
