// Scale-out: two orchestration replicas on the same PostgreSQL schema and Redis channels. The
// gateway's upstream subscription is held by replica 1; the mutations go to replica 2 directly.
// The event crosses through Redis and still reaches the subscriber, resolved across subgraphs.
// Needs DATABASE_URL and REDIS_URL (CI sets both); skipped, visibly, otherwise.
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, dropSchema, REDIS_URL } from '../support/databases.ts';
import { getFreePort, gqlOk, manageProcesses, startPlatform, startProcess, type Platform, type ServiceProcess } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, wsClient } from '../subscriptions/support.ts';

manageProcesses();

const enabled = Boolean(DATABASE_URL && REDIS_URL);
if (!enabled) console.warn('[tests] multi-replica subscription test skipped: DATABASE_URL and REDIS_URL must both be set (CI sets them).');

describe.skipIf(!enabled)('subscriptions across orchestration replicas (PostgreSQL + Redis)', () => {
  const prefix = `e2e${randomBytes(4).toString('hex')}_`;
  let dataDir: string;
  let platform: Platform;
  let replica2: ServiceProcess;
  let client: Client;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-replicas-'));
    const shared = { DATABASE_SCHEMA_PREFIX: prefix, EVENT_CHANNEL_PREFIX: prefix, LOG_LEVEL: 'info' };
    platform = await startPlatform({ dataDir, env: shared });
    const port = await getFreePort();
    replica2 = await startProcess({
      name: 'orchestration-2',
      args: ['scripts/subgraph.ts', 'orchestration'],
      port,
      // Asks the platform's agents subgraph about the agent at each claim, like the first replica.
      env: { ...shared, ...TEST_SECURITY_ENV, DATA_DIR: dataDir, ORCHESTRATION_PORT: String(port), SUBGRAPH_AGENTS_URL: platform.agents.url },
    });
    client = wsClient(platform.url);
  });

  afterAll(async () => {
    await client?.dispose();
    await replica2?.stop();
    await platform?.stop();
    await dropSchema(`${prefix}agents`);
    await dropSchema(`${prefix}orchestration`);
    await dropSchema(`${prefix}governance`);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('an event produced by one replica reaches a subscription held by the other', async () => {
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
      platform.url,
      `mutation { registerAgent(input: { name: "Replica worker", skills: [{ id: "r", name: "R", tags: ["replicas"] }] }) { id } }`,
    );
    const agentId = registerAgent.id;
    await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: agentId });
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const sub = subscribe(client, {
      query: `subscription($a: ID) { taskUpdated(agentId: $a) { kind from to task { title state progress { percent } agent { name } } } }`,
      variables: { a: agentId },
    });
    await subgraphSubscribed(platform.orchestration, before);

    // Straight to replica 2 (signed as the gateway would): neither the gateway nor replica 1 sees these requests.
    const asGateway = await identityHeaders('orchestration');
    const submitted = await gqlOk<{ submitTask: { id: string } }>(
      replica2.url,
      `mutation { submitTask(input: { title: "Cross-replica", requiredSkillTags: ["replicas"] }) { id } }`,
      undefined,
      asGateway,
    );
    await gqlOk(replica2.url, `mutation Claim($a: ID!) { claimTask(agentId: $a, skillTags: ["replicas"]) { id } }`, { a: agentId }, asGateway);
    expect((await sub.next()).data).toEqual({
      taskUpdated: {
        kind: 'STATE_CHANGED',
        from: 'SUBMITTED',
        to: 'ASSIGNED',
        task: { title: 'Cross-replica', state: 'ASSIGNED', progress: null, agent: { name: 'Replica worker' } },
      },
    });
    await gqlOk(
      replica2.url,
      `mutation Progress($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 75) { id } }`,
      { t: submitted.submitTask.id, a: agentId },
      asGateway,
    );
    expect((await sub.next()).data).toMatchObject({ taskUpdated: { kind: 'STATE_CHANGED', from: 'ASSIGNED', to: 'WORKING' } });
    expect((await sub.next()).data).toEqual({
      taskUpdated: {
        kind: 'PROGRESS_REPORTED',
        from: null,
        to: null,
        task: { title: 'Cross-replica', state: 'WORKING', progress: { percent: 75 }, agent: { name: 'Replica worker' } },
      },
    });
    // The three mutations were served by replica 2; replica 1 only held the subscription.
    expect(replica2.jsonLogs().filter((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/graphql')).toHaveLength(3);
    expect(subgraphOpenSubscriptions(replica2).opened).toBe(0);
    sub.unsubscribe();
  });
});
