// Scale-out: two collaboration replicas on one PostgreSQL schema and Redis, each behind its own
// gateway. A message sent through one reaches a subscriber of the other, and a replica killed with
// SIGKILL takes its subscribers offline once their presence expires (no replica refreshes it
// any more; the survivor's sweeper expires it). Needs DATABASE_URL and REDIS_URL (CI sets both).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { TEST_SECURITY_ENV, userToken } from '../support/auth.ts';
import { DATABASE_URL, dropSchema, REDIS_URL } from '../support/databases.ts';
import {
  getFreePort,
  gqlOk,
  manageProcesses,
  startGatewayProcess,
  startPlatform,
  startProcess,
  subgraphsOf,
  type Platform,
  type ServiceProcess,
} from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient } from '../subscriptions/support.ts';

manageProcesses();

const enabled = Boolean(DATABASE_URL && REDIS_URL);
if (!enabled) console.warn('[tests] collaboration replica test skipped: DATABASE_URL and REDIS_URL must both be set (CI sets them).');

const USER_SCOPES = PLATFORM_SCOPES.filter((s) => s !== 'admin');

describe.skipIf(!enabled)('collaboration across two replicas and two gateways (PostgreSQL + Redis)', () => {
  const prefix = `e2e${randomBytes(4).toString('hex')}_`;
  // A short presence TTL: a dead replica's connections expire within a test's patience.
  const shared = {
    DATABASE_SCHEMA_PREFIX: prefix,
    EVENT_CHANNEL_PREFIX: prefix,
    LOG_LEVEL: 'info',
    COLLABORATION_PRESENCE_TTL_MS: '1500',
    COLLABORATION_PRESENCE_SWEEP_INTERVAL_MS: '200',
  };
  let dataDir: string;
  let platform: Platform;
  let replica2: ServiceProcess;
  let gateway2: ServiceProcess;
  const clients: Client[] = [];

  async function as(subject: string, gatewayUrl: string) {
    const token = await userToken({ subject, scopes: USER_SCOPES });
    const client = wsClient(gatewayUrl, { connectionParams: { authorization: `Bearer ${token}` } });
    clients.push(client);
    return { client, gql: <T>(q: string, v?: Record<string, unknown>) => gqlOk<T>(gatewayUrl, q, v, { authorization: `Bearer ${token}` }) };
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-collab-replicas-'));
    platform = await startPlatform({ dataDir, with: ['collaboration'], env: shared });
    const port = await getFreePort();
    replica2 = await startProcess({
      name: 'collaboration-2',
      args: ['scripts/subgraph.ts', 'collaboration'],
      port,
      env: { ...shared, ...TEST_SECURITY_ENV, DATA_DIR: dataDir, COLLABORATION_PORT: String(port) },
    });
    gateway2 = await startGatewayProcess({ name: 'gateway-2', subgraphs: { ...subgraphsOf(platform), collaboration: replica2.url }, env: shared });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await gateway2?.stop();
    await replica2?.stop();
    await platform?.stop();
    for (const name of ['agents', 'orchestration', 'governance', 'memory', 'collaboration']) await dropSchema(`${prefix}${name}`);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('a message sent through one replica reaches a subscriber of the other, in channel order', async () => {
    const ann = await as('ann', platform.url);
    const ben = await as('ben', gateway2.url);
    const { createChannel } = await ann.gql<{ createChannel: { id: string } }>(
      'mutation { createChannel(input: { kind: DIRECT, participants: [{ kind: USER, id: "ben" }] }) { id } }',
    );
    const channelId = createChannel.id;
    const before = subgraphOpenSubscriptions(replica2).opened;
    const benSub = subscribe(ben.client, {
      query: 'subscription($c: ID!) { messageAdded(channelId: $c) { message { sequence parts { text } } } }',
      variables: { c: channelId },
    });
    await subgraphSubscribed(replica2, before);
    for (const text of ['one', 'two', 'three'])
      await ann.gql('mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }', { i: { channelId, parts: [{ text }] } });
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await benSub.next()).data);
    expect(got).toEqual(['one', 'two', 'three'].map((text, i) => ({ messageAdded: { message: { sequence: i + 1, parts: [{ text }] } } })));
    // The same direct channel, opened from the other side.
    const { createChannel: same } = await ben.gql<{ createChannel: { id: string } }>(
      'mutation { createChannel(input: { kind: DIRECT, participants: [{ kind: USER, id: "ann" }] }) { id } }',
    );
    expect(same.id).toBe(channelId);
    benSub.unsubscribe();
  });

  it("an agent's heartbeat to the agents subgraph makes it present (the event crosses Redis)", async () => {
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(platform.url, 'mutation { registerAgent(input: { name: "Present" }) { id } }');
    await gqlOk(platform.url, 'mutation($id: ID!) { recordHeartbeat(id: $id) { id } }', { id: registerAgent.id });
    const status = await waitFor('the heartbeat to count as presence', async () => {
      const { agent } = await gqlOk<{ agent: { presence: { status: string } } }>(platform.url, 'query($id: ID!) { agent(id: $id) { presence { status } } }', {
        id: registerAgent.id,
      });
      return agent.presence.status === 'ONLINE' ? agent.presence.status : undefined;
    });
    expect(status).toBe('ONLINE');
  });

  it('a replica killed with SIGKILL takes its subscribers offline within the presence TTL', async () => {
    const watcher = await as('watcher', platform.url);
    const cleo = await as('cleo', gateway2.url);
    const before1 = subgraphOpenSubscriptions(platform.subgraphs.collaboration!).opened;
    const changes = subscribe(watcher.client, { query: 'subscription { presenceChanged { presence { status participant { id } } } }' });
    await subgraphSubscribed(platform.subgraphs.collaboration!, before1);
    const cleoChange = async () => {
      for (;;) {
        const e = (await changes.next(15_000)).data as { presenceChanged: { presence: { status: string; participant: { id: string } } } };
        if (e.presenceChanged.presence.participant.id === 'cleo') return e.presenceChanged.presence.status;
      }
    };
    const before2 = subgraphOpenSubscriptions(replica2).opened;
    subscribe(cleo.client, { query: 'subscription { myMessages { channelId } }' });
    await subgraphSubscribed(replica2, before2);
    expect(await cleoChange()).toBe('ONLINE');
    replica2.kill('SIGKILL');
    await replica2.exited();
    expect(await cleoChange()).toBe('OFFLINE');
    changes.unsubscribe();
  });
});
