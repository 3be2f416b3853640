// Two platform instances discovering each other (the peering test): each registers the
// other as a DUADP peer and pulls its public agents into its remote catalog, with provenance and
// the card signature verified against the key the peer's descriptor publishes; an agent made
// private disappears at the next pull; a broken peer is backed off; a remote agent can be matched.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort, gqlOk, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let a: Platform;
let b: Platform;

async function start(name: string, signed: boolean): Promise<Platform> {
  const gatewayPort = await getFreePort();
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return startPlatform({
    dataDir: join(dataDir, name),
    with: ['discovery'],
    ports: { gateway: gatewayPort },
    env: {
      DISCOVERY_PUBLIC_URL: `http://127.0.0.1:${gatewayPort}`,
      DISCOVERY_NODE_NAME: name,
      ...(signed ? { DISCOVERY_SIGNING_KEY: JSON.stringify({ ...key, kid: `${name}-key` }) } : {}),
      // Pulls happen when the test asks (syncPeer), not on their own meanwhile.
      DISCOVERY_CHECK_INTERVAL_MS: '3600000',
    },
  });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-discovery-peers-'));
  // One after the other: ten processes starting at once outrun the readiness timeout on a small CI machine.
  a = await start('node-a', false);
  b = await start('node-b', true);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const base = (p: Platform) => p.url.replace(/\/graphql$/, '');

async function publish(p: Platform, name: string, tag: string, isPublic: boolean): Promise<string> {
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    p.url,
    'mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }',
    {
      input: { name, description: `${name} does ${tag}`, skills: [{ id: tag, name: tag, tags: [tag] }] },
    },
  );
  await gqlOk(p.url, 'mutation($id: ID!, $public: Boolean!) { setAgentDiscovery(agentId: $id, input: { public: $public }) { version } }', {
    id: registerAgent.id,
    public: isPublic,
  });
  return registerAgent.id;
}

interface PeerView {
  id: string;
  state: string;
  agentCount: number;
  consecutiveFailures: number;
  lastError: string | null;
  nextSyncAt: string;
}
const PEER = 'id state agentCount consecutiveFailures lastError nextSyncAt';

async function register(on: Platform, name: string, url: string): Promise<PeerView> {
  const { registerPeer } = await gqlOk<{ registerPeer: PeerView }>(on.url, `mutation($input: RegisterPeerInput!) { registerPeer(input: $input) { ${PEER} } }`, {
    input: { name, kind: 'DUADP', url, trust: 'MEDIUM', syncIntervalSeconds: 60 },
  });
  return registerPeer;
}

const sync = async (on: Platform, id: string) =>
  (await gqlOk<{ syncPeer: PeerView }>(on.url, `mutation($id: ID!) { syncPeer(id: $id) { ${PEER} } }`, { id })).syncPeer;

interface Remote {
  id: string;
  name: string;
  peerId: string;
  sourceUrl: string;
  signatureVerified: boolean;
  trust: string;
  fetchedAt: string;
}
const remotes = async (on: Platform, peerId: string) =>
  (
    await gqlOk<{ remoteAgents: Remote[] }>(
      on.url,
      'query($p: ID) { remoteAgents(peerId: $p) { id name peerId sourceUrl signatureVerified trust fetchedAt } }',
      {
        p: peerId,
      },
    )
  ).remoteAgents;

describe('two platform instances peering', () => {
  it('pull each other’s public agents with provenance; removed ones disappear', async () => {
    const bPublic = await publish(b, 'Bravo Planner', 'planning', true);
    await publish(b, 'Bravo Secret', 'secrets', false);
    const aPublic = await publish(a, 'Alpha Coder', 'coding', true);

    const bOnA = await register(a, 'node b', base(b));
    const aOnB = await register(b, 'node a', base(a));
    expect(await sync(a, bOnA.id)).toMatchObject({ state: 'OK', agentCount: 1, consecutiveFailures: 0 });
    expect(await sync(b, aOnB.id)).toMatchObject({ state: 'OK', agentCount: 1 });

    const onA = await remotes(a, bOnA.id);
    expect(onA).toEqual([expect.objectContaining({ id: bPublic, name: 'Bravo Planner', peerId: bOnA.id, trust: 'MEDIUM', signatureVerified: true })]);
    expect(onA[0]!.sourceUrl).toBe(`${base(b)}/v1/agents/${bPublic}/card`);
    // Node a signs nothing: node b has its agent, unverified.
    expect(await remotes(b, aOnB.id)).toEqual([expect.objectContaining({ id: aPublic, name: 'Alpha Coder', signatureVerified: false })]);

    // A remote agent is ranked when asked for (unknown health, load and success: 0.5 each).
    const { matchAgents } = await gqlOk<{ matchAgents: { origin: string; agentId: string; peerId: string; parts: { health: number } }[] }>(
      a.url,
      'query { matchAgents(need: { skills: ["planning"], includeRemote: true }) { origin agentId peerId parts { health } } }',
    );
    expect(matchAgents).toEqual([{ origin: 'REMOTE', agentId: bPublic, peerId: bOnA.id, parts: { health: 0.5 } }]);

    await gqlOk(b.url, 'mutation($id: ID!) { setAgentDiscovery(agentId: $id, input: { public: false }) { version } }', { id: bPublic });
    expect(await sync(a, bOnA.id)).toMatchObject({ state: 'OK', agentCount: 0 });
    expect(await remotes(a, bOnA.id)).toEqual([]);
  });

  it('backs off a broken peer', async () => {
    const closed = await getFreePort();
    const broken = await register(a, 'gone', `http://127.0.0.1:${closed}`);
    const first = await sync(a, broken.id);
    expect(first).toMatchObject({ state: 'FAILING', consecutiveFailures: 1 });
    expect(first.lastError).toContain('/.well-known/duadp.json');
    const second = await sync(a, broken.id);
    expect(second.consecutiveFailures).toBe(2);
    // 60 s interval doubled per failure: the second failure waits about 240 s, later than the first's 120 s.
    expect(Date.parse(second.nextSyncAt) - Date.parse(first.nextSyncAt)).toBeGreaterThan(100_000);
  });
});
