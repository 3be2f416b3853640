// Agent credentials end to end, through the gateway as a client sees it: an agent registered with
// issueCredential (GraphQL, REST, A2A card) gets its own key; with it the agent keeps itself alive
// but cannot touch another agent (AGENT_MISMATCH, REST 403); its identity reaches the subgraphs
// as the agent (orchestration's identity token carries its agentId); rotation replaces the key.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityService, loadIdentityConfig, type RequestIdentity } from '../../runtime/identity.ts';
import { rest } from '../rest/client.ts';
import { bearer, TEST_SIGNING_SECRET } from '../support/auth.ts';
import { getFreePort, gql, gqlOk, manageProcesses, startPlatform, startTcpTap, type Platform, type TcpTap } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let orchestrationTap: TcpTap;
let base: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-agent-credentials-'));
  // The gateway reaches orchestration through a TCP tap, so the test can read the identity it signs.
  const orchestrationPort = await getFreePort();
  orchestrationTap = await startTcpTap(orchestrationPort);
  platform = await startPlatform({
    dataDir,
    ports: { orchestration: orchestrationPort },
    subgraphUrls: { orchestration: orchestrationTap.url },
    // A revoked key is refused on its next use, not API_KEY_CACHE_MS later.
    gatewayEnv: { API_KEY_CACHE_MS: '0' },
  });
  base = platform.url.replace(/\/graphql$/, '');
}, 120_000);

afterAll(async () => {
  await platform?.stop();
  await orchestrationTap?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

type Credential = { keyId: string; prefix: string; secret: string; scopes: string[] };
type Registered = { id: string; name: string; credential: Credential | null };
const REGISTER =
  'mutation($input: RegisterAgentInput!, $issue: Boolean) { registerAgent(input: $input, issueCredential: $issue) { id name credential { keyId prefix secret scopes } } }';
const HEARTBEAT = 'mutation($id: ID!) { recordHeartbeat(id: $id) { id name lastHeartbeatAt } }';

async function register(name: string, issue = false): Promise<Registered> {
  return (await gqlOk<{ registerAgent: Registered }>(platform.url, REGISTER, { input: { name }, issue })).registerAgent;
}
const codes = (errors: { extensions?: Record<string, unknown> }[] | undefined) => errors?.map((e) => e.extensions?.code);

describe('agent credentials through the gateway', () => {
  it('registering over GraphQL, REST and from a card returns the key once, only when asked', async () => {
    const viaGraphql = await register('Graph agent', true);
    expect(viaGraphql.credential?.scopes).toEqual([
      'agents:read',
      'agents:write',
      'collaboration:read',
      'collaboration:write',
      'memory:read',
      'memory:write',
      'tasks:read',
      'tasks:write',
    ]);
    expect((await register('Plain agent')).credential).toBeNull();

    const viaRest = await rest(base, 'POST', '/v1/agents', { query: { issueCredential: 'true' }, body: { name: 'Rest agent' } });
    expect(viaRest.status).toBe(201);
    const restAgent = viaRest.body as Registered;
    expect(restAgent.credential?.secret).toMatch(/^ap_[0-9a-f]{16}_/);
    const plainRest = await rest(base, 'POST', '/v1/agents', { body: { name: 'Rest plain' } });
    expect(plainRest.status).toBe(201);
    expect((plainRest.body as Registered).credential).toBeNull();

    const card = {
      name: 'Card agent',
      description: 'From a card',
      version: '1.0.0',
      url: 'https://agents.example.com/card',
      skills: [{ id: 's', name: 'S', description: 'x', tags: ['t'] }],
    };
    const viaCard = await rest(base, 'POST', '/v1/agents/from-card', { query: { issueCredential: 'true' }, body: { card } });
    expect(viaCard.status).toBe(201);
    const cardAgent = viaCard.body as Registered;

    // Each key acts as its own agent.
    for (const agent of [viaGraphql, restAgent, cardAgent]) {
      const beat = await gqlOk<{ recordHeartbeat: { name: string } }>(platform.url, HEARTBEAT, { id: agent.id }, { 'x-api-key': agent.credential!.secret });
      expect(beat.recordHeartbeat.name).toBe(agent.name);
    }
    // Listed for the admin without secrets.
    const keys = await gqlOk<{ apiKeys: { nodes: { id: string; agentId: string }[] } }>(
      platform.url,
      'query($a: ID) { apiKeys(agentId: $a) { nodes { id agentId } } }',
      { a: restAgent.id },
    );
    expect(keys.apiKeys.nodes).toEqual([{ id: restAgent.credential!.keyId, agentId: restAgent.id }]);
  });

  it('an agent credential acts on its own agent only: another agent or a registration is 403 AGENT_MISMATCH', async () => {
    const me = await register('Me', true);
    const other = await register('Other');
    const asMe = { 'x-api-key': me.credential!.secret };

    const own = await gqlOk<{ recordHeartbeat: { lastHeartbeatAt: string | null } }>(platform.url, HEARTBEAT, { id: me.id }, asMe);
    expect(own.recordHeartbeat.lastHeartbeatAt).not.toBeNull();

    const foreign = await gql(platform.url, HEARTBEAT, { id: other.id }, asMe);
    expect(codes(foreign.errors)).toEqual(['AGENT_MISMATCH']);
    const foreignRest = await rest(base, 'POST', `/v1/agents/${other.id}/heartbeat`, { headers: asMe });
    expect(foreignRest.status).toBe(403);
    expect(foreignRest.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(foreignRest.body).toMatchObject({ status: 403, code: 'AGENT_MISMATCH' });
    const spawn = await rest(base, 'POST', '/v1/agents', { body: { name: 'Spawned' }, headers: asMe });
    expect(spawn.status).toBe(403);
    expect(spawn.body).toMatchObject({ code: 'AGENT_MISMATCH' });
    // The other agent never had a heartbeat.
    const after = await gqlOk<{ agent: { lastHeartbeatAt: string | null } }>(platform.url, 'query($id: ID!) { agent(id: $id) { lastHeartbeatAt } }', {
      id: other.id,
    });
    expect(after.agent.lastHeartbeatAt).toBeNull();
    // An agent credential has no admin scope: it cannot list or mint keys.
    const keys = await gql<{ apiKeys: unknown }>(platform.url, '{ apiKeys { totalCount } }', undefined, asMe);
    expect(codes(keys.errors)).toEqual(['FORBIDDEN']);
  });

  it('a token with the agent claim acts as that agent too', async () => {
    const me = await register('Token agent');
    const other = await register('Bystander');
    const asAgent = await bearer({ subject: `agent:${me.id}`, scopes: ['agents:read', 'agents:write'], agentId: me.id });
    expect((await gqlOk<{ recordHeartbeat: { name: string } }>(platform.url, HEARTBEAT, { id: me.id }, asAgent)).recordHeartbeat.name).toBe('Token agent');
    expect(codes((await gql(platform.url, HEARTBEAT, { id: other.id }, asAgent)).errors)).toEqual(['AGENT_MISMATCH']);
  });

  it('reaches orchestration as the agent: the identity the gateway signs there carries its agentId', async () => {
    const me = await register('Worker', true);
    const before = orchestrationTap.requestHeaders().length;
    await gqlOk(platform.url, '{ tasks(first: 1) { totalCount } }', undefined, { 'x-api-key': me.credential!.secret });
    const identity = createIdentityService(loadIdentityConfig({ GATEWAY_SIGNING_SECRET: TEST_SIGNING_SECRET }));
    const seen: RequestIdentity[] = [];
    for (const headers of orchestrationTap.requestHeaders().slice(before)) {
      if (headers['x-gateway-identity']) seen.push(await identity.verifyIdentity(headers['x-gateway-identity'], 'orchestration'));
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.map((s) => [s.kind, s.agentId, s.subject])).toContainEqual(['apiKey', me.id, `apikey:${me.credential!.keyId}`]);
  });

  it('the walkthrough: an agent works a task with its own credential only, and history says it acted as itself', async () => {
    const skills = [{ id: 'tr', name: 'Translate', tags: ['translate-e2e'] }];
    const me = (await gqlOk<{ registerAgent: Registered }>(platform.url, REGISTER, { input: { name: 'Translator', skills }, issue: true })).registerAgent;
    const other = await register('Bystander', true);
    await gqlOk(platform.url, 'mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: me.id });
    const submitted = await gqlOk<{ submitTask: { id: string } }>(platform.url, 'mutation($i: SubmitTaskInput!) { submitTask(input: $i) { id } }', {
      i: { title: 'Translate the release notes', requiredSkillTags: ['translate-e2e'] },
    });
    const taskId = submitted.submitTask.id;
    const asMe = { 'x-api-key': me.credential!.secret };

    // Claimed naming no agent: the credential is the agent. Naming another agent is refused.
    const stolen = await gql(platform.url, 'mutation($a: ID) { claimTask(agentId: $a) { id } }', { a: other.id }, asMe);
    expect(codes(stolen.errors)).toEqual(['AGENT_MISMATCH']);
    const claimed = await gqlOk<{ claimTask: { id: string; state: string; agent: { name: string } } | null }>(
      platform.url,
      'mutation { claimTask(leaseSeconds: 60) { id state agent { name } } }',
      undefined,
      asMe,
    );
    expect(claimed.claimTask).toEqual({ id: taskId, state: 'ASSIGNED', agent: { name: 'Translator' } });

    // Over REST with the same credential: progress, then the result.
    const progress = await fetch(`${base}/v1/tasks/${taskId}/progress`, {
      method: 'POST',
      headers: { ...asMe, 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 50, message: 'half way' }),
    });
    expect(progress.status).toBe(200);
    const done = await fetch(`${base}/v1/tasks/${taskId}/complete`, {
      method: 'POST',
      headers: { ...asMe, 'content-type': 'application/json' },
      body: JSON.stringify({ result: { text: 'Notes de version' } }),
    });
    expect(done.status).toBe(200);
    const task = (await done.json()) as { state: string; history: { kind: string; to: string; actor: string; onBehalfOf: string | null }[] };
    expect(task.state).toBe('COMPLETED');
    const mine = task.history.filter((h) => h.to !== 'SUBMITTED');
    expect(mine.map((h) => h.to)).toEqual(['ASSIGNED', 'WORKING', 'COMPLETED']);
    for (const entry of mine) expect(entry).toMatchObject({ actor: `apikey:${me.credential!.keyId}`, onBehalfOf: me.id });
  });

  it('rotation issues a new key and retires the old one; the agent may rotate its own, not another’s', async () => {
    const me = await register('Rotating', true);
    const other = await register('Someone else', true);
    const rotate = 'mutation($a: ID!, $o: Int) { rotateAgentCredential(agentId: $a, overlapSeconds: $o) { secret apiKey { agentId } } }';

    const bySelf = await gqlOk<{ rotateAgentCredential: { secret: string } }>(platform.url, rotate, { a: me.id, o: 0 }, { 'x-api-key': me.credential!.secret });
    const fresh = bySelf.rotateAgentCredential.secret;
    const old = await gql(platform.url, HEARTBEAT, { id: me.id }, { 'x-api-key': me.credential!.secret });
    expect(old.status).toBe(401);
    expect((await gqlOk<{ recordHeartbeat: { name: string } }>(platform.url, HEARTBEAT, { id: me.id }, { 'x-api-key': fresh })).recordHeartbeat.name).toBe(
      'Rotating',
    );

    const stranger = await gql(platform.url, rotate, { a: other.id, o: 0 }, { 'x-api-key': fresh });
    expect(codes(stranger.errors)).toEqual(['AGENT_MISMATCH']);
    expect(
      (await gqlOk<{ recordHeartbeat: { name: string } }>(platform.url, HEARTBEAT, { id: other.id }, { 'x-api-key': other.credential!.secret })).recordHeartbeat
        .name,
    ).toBe('Someone else');

    // By the admin, with an overlap: both keys work until it ends; revoking ends it at once.
    const byAdmin = await gqlOk<{ rotateAgentCredential: { secret: string } }>(platform.url, rotate, { a: me.id, o: 600 });
    expect((await gql(platform.url, HEARTBEAT, { id: me.id }, { 'x-api-key': fresh })).errors).toBeUndefined();
    expect((await gql(platform.url, HEARTBEAT, { id: me.id }, { 'x-api-key': byAdmin.rotateAgentCredential.secret })).errors).toBeUndefined();
    const listed = await gqlOk<{ apiKeys: { nodes: { id: string; revokedAt: string | null }[] } }>(
      platform.url,
      'query($a: ID) { apiKeys(agentId: $a) { nodes { id revokedAt } } }',
      { a: me.id },
    );
    const outgoing = listed.apiKeys.nodes.find((k) => k.revokedAt !== null)!;
    await gqlOk(platform.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: outgoing.id });
    expect((await gql(platform.url, HEARTBEAT, { id: me.id }, { 'x-api-key': fresh })).status).toBe(401);
  });
});
