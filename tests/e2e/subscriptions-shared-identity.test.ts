// Shared subscription streams act as themselves, not as their first subscriber: identical
// subscriptions share one upstream stream, and that stream (its upstream subscription and every
// event's entity fetches) runs with an identity of its own: the subscribers' tenant and scopes,
// no one's subject, no one's expiry. So it outlives its first subscriber's token, and subscribers
// who may see different things never share one. Real processes; the agents subgraph sits behind a
// TCP tap so the identity the gateway signed for each entity fetch can be read off the wire.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STREAM_SUBJECT } from '../../gateway/subscriptions/stream-identity.ts';
import { bearer, userToken, type TokenOptions } from '../support/auth.ts';
import { getFreePort, gqlOk, manageProcesses, startPlatform, startTcpTap, type Platform, type TcpTap } from '../support/processes.ts';
import { gatewayStats, subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient, type TestSubscription } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let agentsTap: TcpTap;
const clients: Client[] = [];
const run = randomUUID().slice(0, 8);

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-shared-identity-'));
  // The tap listens first on a port of its own; the agents subgraph then gets the port it forwards to.
  const agentsPort = await getFreePort();
  agentsTap = await startTcpTap(agentsPort);
  platform = await startPlatform({ dataDir, ports: { agents: agentsPort }, subgraphUrls: { agents: agentsTap.url } });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await waitFor('all subscriptions released', async () => (await gatewayStats(platform.url)).upstreamSubscriptions === 0);
});

afterAll(async () => {
  await platform?.stop();
  await agentsTap?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function client(token: string): Client {
  const c = wsClient(platform.url, { connectionParams: { authorization: `Bearer ${token}` } });
  clients.push(c);
  return c;
}

/** An active agent with a skill tag of its own, in the tenant of the given admin headers, and a task for it. */
async function agentWithTask(admin: Record<string, string>, name: string): Promise<{ agentId: string; tag: string; taskId: string }> {
  const tag = `tag-${randomUUID().slice(0, 8)}`;
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    `mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }`,
    { input: { name, skills: [{ id: 'work', name: 'Work', tags: [tag] }] } },
    admin,
  );
  await gqlOk(platform.url, `mutation($id: ID!) { activateAgent(id: $id) { id } }`, { id: registerAgent.id }, admin);
  const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(
    platform.url,
    `mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }`,
    { input: { title: `task of ${name}`, requiredSkillTags: [tag] } },
    admin,
  );
  return { agentId: registerAgent.id, tag, taskId: submitTask.id };
}

/** The claims of every gateway identity token the agents subgraph received from the given request on. */
function identitiesSeenByAgents(from: number): { sub?: string; ten?: string; rid?: string }[] {
  return agentsTap
    .requestHeaders()
    .slice(from)
    .map((h) => h['x-gateway-identity'])
    .filter((token): token is string => typeof token === 'string')
    .map((token) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; ten?: string; rid?: string });
}

async function subscribedBy(c: Client, query: string, variables: Record<string, unknown> = {}): Promise<TestSubscription> {
  const before = subgraphOpenSubscriptions(platform.orchestration).opened;
  const s = subscribe(c, { query, variables });
  await subgraphSubscribed(platform.orchestration, before);
  return s;
}

const WATCH = `subscription($t: ID) { taskUpdated(taskId: $t) { to task { agent { name } } } }`;

describe('a shared stream', () => {
  it('outlives its first subscriber’s token: that subscription ends as documented, the other keeps getting events with fields from the other subgraph', async () => {
    const tenant = `shared-${run}`;
    const admin = await bearer({ tenant, subject: `admin@${tenant}` });
    const { agentId, tag, taskId } = await agentWithTask(admin, 'Outliving');
    const first: TokenOptions = { tenant, subject: `first@${tenant}`, expiresIn: 5 };
    const firstSub = await subscribedBy(client(await userToken(first)), WATCH, { t: taskId });
    const tapBefore = agentsTap.requestHeaders().length;
    // Identical: joins the first one's stream instead of subscribing upstream again.
    const second = subscribe(client(await userToken({ tenant, subject: `second@${tenant}` })), { query: WATCH, variables: { t: taskId } });
    await waitFor('both subscribed', async () => (await gatewayStats(platform.url)).clientSubscriptions === 2);
    expect(await gatewayStats(platform.url)).toMatchObject({ sharedStreams: 1, upstreamSubscriptions: 1 });

    const { claimTask } = await gqlOk<{ claimTask: { id: string } }>(
      platform.url,
      `mutation($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }`,
      { a: agentId, tags: [tag] },
      admin,
    );
    expect(claimTask.id).toBe(taskId);
    const assigned = { data: { taskUpdated: { to: 'ASSIGNED', task: { agent: { name: 'Outliving' } } } } };
    expect(await firstSub.next()).toEqual(assigned);
    expect(await second.next()).toEqual(assigned);

    // The first subscriber's token expires: its subscription ends (UNAUTHENTICATED expired, then complete)...
    const last = await firstSub.next(20_000);
    expect(last.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', reason: 'expired' }) })]);
    expect(await firstSub.ended).toEqual({ kind: 'complete' });
    // ...and the stream stays for the second.
    await waitFor('the first subscriber released', async () => (await gatewayStats(platform.url)).clientSubscriptions === 1);
    expect(await gatewayStats(platform.url)).toMatchObject({ sharedStreams: 1, upstreamSubscriptions: 1 });

    await gqlOk(
      platform.url,
      `mutation($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 50) { id } }`,
      { t: taskId, a: agentId },
      admin,
    );
    expect(await second.next()).toEqual({ data: { taskUpdated: { to: 'WORKING', task: { agent: { name: 'Outliving' } } } } });

    // Every entity fetch of the stream acted as the stream: its tenant, no subscriber's subject or request.
    const seen = identitiesSeenByAgents(tapBefore);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const claims of seen) {
      expect(claims).toMatchObject({ sub: STREAM_SUBJECT, ten: tenant });
      expect(claims.rid).toMatch(/^stream-/);
    }
    second.unsubscribe();
  });
});

describe('subscribers who may see different things never share a stream', () => {
  const TENANT_WIDE = 'subscription { taskUpdated { to task { id agent { name } } } }';

  it('two tenants: one upstream subscription each, and each gets only its own tenant’s events', async () => {
    const [tenantA, tenantB] = [`ta-${run}`, `tb-${run}`];
    const adminA = await bearer({ tenant: tenantA });
    const adminB = await bearer({ tenant: tenantB });
    const a = await agentWithTask(adminA, 'Agent of A');
    const b = await agentWithTask(adminB, 'Agent of B');
    const subA = await subscribedBy(client(await userToken({ tenant: tenantA })), TENANT_WIDE);
    const subB = await subscribedBy(client(await userToken({ tenant: tenantB })), TENANT_WIDE);
    expect(await gatewayStats(platform.url)).toMatchObject({ clientSubscriptions: 2, sharedStreams: 2, upstreamSubscriptions: 2 });

    await gqlOk(
      platform.url,
      `mutation($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }`,
      { a: b.agentId, tags: [b.tag] },
      adminB,
    );
    await gqlOk(
      platform.url,
      `mutation($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }`,
      { a: a.agentId, tags: [a.tag] },
      adminA,
    );
    expect(await subA.next()).toEqual({ data: { taskUpdated: { to: 'ASSIGNED', task: { id: a.taskId, agent: { name: 'Agent of A' } } } } });
    expect(await subB.next()).toEqual({ data: { taskUpdated: { to: 'ASSIGNED', task: { id: b.taskId, agent: { name: 'Agent of B' } } } } });
    subA.unsubscribe();
    subB.unsubscribe();
  });

  it('two scope sets in one tenant: a stream each, and the one without agents:read gets agent null with FORBIDDEN; two subjects with the same scopes share', async () => {
    const tenant = `scopes-${run}`;
    const admin = await bearer({ tenant });
    const { agentId, tag, taskId } = await agentWithTask(admin, 'Scoped');
    const full = await subscribedBy(client(await userToken({ tenant, subject: 'one', scopes: ['tasks:read', 'agents:read'] })), WATCH, { t: taskId });
    const narrow = await subscribedBy(client(await userToken({ tenant, subject: 'two', scopes: ['tasks:read'] })), WATCH, { t: taskId });
    // Another subject with the first one's scopes (in another order): shares its stream.
    const same = subscribe(client(await userToken({ tenant, subject: 'three', scopes: ['agents:read', 'tasks:read'] })), {
      query: WATCH,
      variables: { t: taskId },
    });
    await waitFor('three subscribed', async () => (await gatewayStats(platform.url)).clientSubscriptions === 3);
    expect(await gatewayStats(platform.url)).toMatchObject({ sharedStreams: 2, upstreamSubscriptions: 2 });

    await gqlOk(platform.url, `mutation($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }`, { a: agentId, tags: [tag] }, admin);
    const visible = { data: { taskUpdated: { to: 'ASSIGNED', task: { agent: { name: 'Scoped' } } } } };
    expect(await full.next()).toEqual(visible);
    expect(await same.next()).toEqual(visible);
    const denied = await narrow.next();
    expect(denied.data).toEqual({ taskUpdated: { to: 'ASSIGNED', task: { agent: null } } });
    expect(denied.errors).toEqual([
      expect.objectContaining({ path: ['taskUpdated', 'task', 'agent'], extensions: expect.objectContaining({ code: 'FORBIDDEN' }) }),
    ]);
    for (const s of [full, narrow, same]) s.unsubscribe();
  });
});
