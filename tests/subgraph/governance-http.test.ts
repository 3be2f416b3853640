// The governance subgraph as a client sees it: the real server in-process, spoken to over HTTP
// with gateway identity tokens (an admin of the default tenant, or the gateway itself), or with
// none, which it refuses.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { governance } from '../../subgraphs/governance/index.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { runToExit } from '../support/processes.ts';

interface GraphQLErrorBody {
  message: string;
  path?: (string | number)[];
  extensions?: Record<string, unknown> & { code?: string };
}
interface Response<D> {
  status: number;
  data?: D | null;
  errors?: GraphQLErrorBody[];
}

const KEY_FIELDS = 'id name scopes prefix createdAt lastUsedAt revokedAt createdBy';
const CREATE = `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`;
const VERIFY = 'query($key: String!) { verifyApiKey(key: $key) { keyId tenantId subject scopes agentId } }';
const ISSUE = `mutation($agentId: ID!, $name: String) { issueAgentCredential(agentId: $agentId, name: $name) { secret apiKey { ${KEY_FIELDS} agentId } } }`;
const ROTATE = `mutation($agentId: ID!, $overlap: Int) { rotateAgentCredential(agentId: $agentId, overlapSeconds: $overlap) { secret apiKey { id agentId scopes createdBy } } }`;

/** Where a request goes and who it acts as (the identity headers, or none). */
interface Caller {
  url: string;
  headers: Record<string, string>;
}

async function gql<D = Record<string, unknown>>(caller: Caller, query: string, variables?: Record<string, unknown>): Promise<Response<D>> {
  const res = await fetch(caller.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...caller.headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  expect(text).not.toMatch(/stacktrace|\\n\s*at\s|\.ts:\d+/);
  return { status: res.status, ...(JSON.parse(text) as Omit<Response<D>, 'status'>) };
}

describe(`governance subgraph over HTTP (${DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'governance-http-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  let running: RunningSubgraph;
  // An admin of the default tenant, as the gateway signs it.
  let dev: Caller;
  // The gateway acting for itself (verifyApiKey).
  let gateway: Caller;
  // No identity token at all.
  let strict: Caller;

  beforeAll(async () => {
    running = await startSubgraph(governance, {
      ...process.env,
      GOVERNANCE_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      ...TEST_SECURITY_ENV,
    });
    dev = { url: running.url, headers: await identityHeaders('governance') };
    gateway = { url: running.url, headers: await identityHeaders('governance', { kind: 'service', subject: 'gateway', tenantId: null, scopes: [] }) };
    strict = { url: running.url, headers: {} };
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${schemaPrefix}governance`);
  });

  type Created = { createApiKey: { secret: string; apiKey: Record<string, unknown> & { id: string; prefix: string } } };

  async function create(name = 'Partner', scopes = ['agents:read']): Promise<Created['createApiKey']> {
    const res = await gql<Created>(dev, CREATE, { input: { name, scopes } });
    expect(res.errors).toBeUndefined();
    return res.data!.createApiKey;
  }

  it('creates a key, shows its secret once, and lists it without', async () => {
    const { secret, apiKey } = await create('Billing sync', ['tasks:write', 'agents:read']);
    expect(secret).toMatch(/^ap_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(apiKey).toMatchObject({
      name: 'Billing sync',
      scopes: ['agents:read', 'tasks:write'],
      prefix: secret.slice(0, 19),
      lastUsedAt: null,
      revokedAt: null,
      createdBy: 'test-admin',
    });

    const listed = await gql<{ apiKeys: { totalCount: number; nodes: Record<string, unknown>[] } }>(
      dev,
      `{ apiKeys(first: 100) { totalCount nodes { ${KEY_FIELDS} } } }`,
    );
    expect(listed.data!.apiKeys.nodes).toContainEqual(apiKey);
    expect(JSON.stringify(listed)).not.toContain(secret.slice(20));
    const one = await gql<{ apiKey: Record<string, unknown> }>(dev, `query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} } }`, { id: apiKey.id });
    expect(one.data!.apiKey).toEqual(apiKey);
    // The type has no field that could carry the secret or its hash.
    const fields = await gql<{ __type: { fields: { name: string }[] } }>(dev, '{ __type(name: "ApiKey") { fields { name } } }');
    expect(fields.data!.__type.fields.map((f) => f.name).sort()).toEqual([...KEY_FIELDS.split(' '), 'agentId'].sort());
  });

  it('verifies a key for the gateway, recording its use; a revoked or wrong key verifies as null', async () => {
    const { secret, apiKey } = await create();
    const ok = await gql<{ verifyApiKey: unknown }>(gateway, VERIFY, { key: secret });
    expect(ok.data!.verifyApiKey).toEqual({ keyId: apiKey.id, tenantId: 'default', subject: `apikey:${apiKey.id}`, scopes: ['agents:read'], agentId: null });
    const after = await gql<{ apiKey: { lastUsedAt: string | null } }>(dev, `query($id: ID!) { apiKey(id: $id) { lastUsedAt } }`, { id: apiKey.id });
    expect(after.data!.apiKey.lastUsedAt).not.toBeNull();

    const wrong = secret.slice(0, -3) + (secret.endsWith('AAA') ? 'BBB' : 'AAA');
    for (const key of [wrong, 'garbage', 'x'.repeat(5000)]) expect((await gql(gateway, VERIFY, { key })).data).toEqual({ verifyApiKey: null });

    const revoked = await gql<{ revokeApiKey: { revokedAt: string | null } }>(dev, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', {
      id: apiKey.id,
    });
    expect(revoked.data!.revokeApiKey.revokedAt).not.toBeNull();
    expect((await gql(gateway, VERIFY, { key: secret })).data).toEqual({ verifyApiKey: null });
  });

  it('refuses bad input with BAD_USER_INPUT naming the field, creating nothing', async () => {
    const count = async () =>
      (await gql<{ apiKeys: { totalCount: number } }>(dev, '{ apiKeys(includeRevoked: true) { totalCount } }')).data!.apiKeys.totalCount;
    const before = await count();
    const unknownScope = await gql(dev, CREATE, { input: { name: 'x', scopes: ['agents:read', 'root'] } });
    expect(unknownScope.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.scopes[1]' });
    const noName = await gql(dev, CREATE, { input: { name: '', scopes: ['admin'] } });
    expect(noName.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.name' });
    const badId = await gql(dev, 'mutation { revokeApiKey(id: "42") { id } }');
    expect(badId.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'id' });
    const unknown = await gql(dev, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: randomUUID() });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(await count()).toBe(before);
  });

  it('without a verified identity, answers UNAUTHENTICATED to every operation and changes nothing', async () => {
    const { secret } = await create('still valid');
    for (const [query, variables] of [
      [CREATE, { input: { name: 'sneaky', scopes: ['admin'] } }],
      ['{ apiKeys { totalCount } }', undefined],
      [`query($id: ID!) { apiKey(id: $id) { id } }`, { id: randomUUID() }],
      ['mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: randomUUID() }],
      [VERIFY, { key: secret }],
    ] as const) {
      const res = await gql(strict, query, variables);
      expect(res.status).toBe(401);
      expect(res.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    }
    // Only the gateway itself may probe keys: even a tenant admin may not.
    const probe = await gql(dev, VERIFY, { key: secret });
    expect(probe.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    const names = await gql<{ apiKeys: { nodes: { name: string }[] } }>(dev, '{ apiKeys(first: 100) { nodes { name } } }');
    expect(names.data!.apiKeys.nodes.map((n) => n.name)).not.toContain('sneaky');
  });

  describe('agent credentials', () => {
    // The agents subgraph, as runtime/service-client.ts signs it, registering for test-admin.
    const agentsSubgraph = async (tenantId = 'default', scopes: string[] = ['agents:write']): Promise<Caller> => ({
      url: running.url,
      headers: await identityHeaders('governance', { kind: 'service', subject: 'subgraph:agents:test-admin', tenantId, scopes }),
    });
    type Issued = { issueAgentCredential: { secret: string; apiKey: Record<string, unknown> & { id: string } } };

    async function issue(agentId = randomUUID()): Promise<{ agentId: string; secret: string; id: string }> {
      const res = await gql<Issued>(await agentsSubgraph(), ISSUE, { agentId, name: 'Scout' });
      expect(res.errors).toBeUndefined();
      return { agentId, secret: res.data!.issueAgentCredential.secret, id: res.data!.issueAgentCredential.apiKey.id };
    }

    it('the agents subgraph mints a credential bound to the agent; verify answers its agentId and the agent scopes', async () => {
      const agentId = randomUUID();
      const res = await gql<Issued>(await agentsSubgraph(), ISSUE, { agentId, name: 'Scout' });
      expect(res.data!.issueAgentCredential.apiKey).toMatchObject({
        agentId,
        name: 'Agent credential: Scout',
        scopes: ['agents:read', 'agents:write', 'collaboration:read', 'collaboration:write', 'memory:read', 'memory:write', 'tasks:read', 'tasks:write'],
        createdBy: 'test-admin',
      });
      const verified = await gql<{ verifyApiKey: Record<string, unknown> }>(gateway, VERIFY, { key: res.data!.issueAgentCredential.secret });
      expect(verified.data!.verifyApiKey).toMatchObject({
        keyId: res.data!.issueAgentCredential.apiKey.id,
        tenantId: 'default',
        agentId,
        scopes: ['agents:read', 'agents:write', 'collaboration:read', 'collaboration:write', 'memory:read', 'memory:write', 'tasks:read', 'tasks:write'],
      });
    });

    it('nobody but the agents subgraph mints: an admin, the gateway, another subgraph, or one without agents:write get FORBIDDEN', async () => {
      const other: Caller = {
        url: running.url,
        headers: await identityHeaders('governance', { kind: 'service', subject: 'subgraph:orchestration', tenantId: 'default', scopes: ['agents:write'] }),
      };
      for (const caller of [dev, gateway, other, await agentsSubgraph('default', ['agents:read'])]) {
        const res = await gql(caller, ISSUE, { agentId: randomUUID() });
        expect(res.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
      }
    });

    it('lists an agent’s credentials without secrets through the agentId filter', async () => {
      const mine = await issue();
      await issue();
      const listed = await gql<{ apiKeys: { totalCount: number; nodes: { id: string; agentId: string }[] } }>(
        dev,
        'query($a: ID) { apiKeys(agentId: $a) { totalCount nodes { id agentId } } }',
        { a: mine.agentId },
      );
      expect(listed.data!.apiKeys).toEqual({ totalCount: 1, nodes: [{ id: mine.id, agentId: mine.agentId }] });
      expect(JSON.stringify(listed)).not.toContain(mine.secret.slice(20));
      const bad = await gql(dev, '{ apiKeys(agentId: "nope") { totalCount } }');
      expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'agentId' });
    });

    it('rotates: admin, agents:write, or the agent itself; another agent gets AGENT_MISMATCH; the old key stops', async () => {
      const { agentId, secret } = await issue();
      const rotate = async (caller: Caller, overlap = 0) =>
        gql<{ rotateAgentCredential: { secret: string; apiKey: { agentId: string; createdBy: string } } }>(caller, ROTATE, { agentId, overlap });

      const byAdmin = await rotate(dev);
      expect(byAdmin.data!.rotateAgentCredential.apiKey).toMatchObject({ agentId, createdBy: 'test-admin' });
      expect((await gql(gateway, VERIFY, { key: secret })).data).toEqual({ verifyApiKey: null });

      const operator: Caller = { url: running.url, headers: await identityHeaders('governance', { subject: 'operator', scopes: ['agents:write'] }) };
      const byOperator = await rotate(operator, 60);
      expect(byOperator.errors).toBeUndefined();
      // Within the overlap the previous key still verifies.
      expect(
        (await gql<{ verifyApiKey: { agentId: string } }>(gateway, VERIFY, { key: byAdmin.data!.rotateAgentCredential.secret })).data!.verifyApiKey.agentId,
      ).toBe(agentId);

      const self: Caller = {
        url: running.url,
        headers: await identityHeaders('governance', { kind: 'apiKey', subject: 'apikey:x', scopes: ['agents:write'], agentId }),
      };
      expect((await rotate(self)).data!.rotateAgentCredential.apiKey.agentId).toBe(agentId);

      const stranger: Caller = {
        url: running.url,
        headers: await identityHeaders('governance', { kind: 'apiKey', subject: 'apikey:y', scopes: ['agents:write'], agentId: randomUUID() }),
      };
      const mismatch = await rotate(stranger);
      expect(mismatch.errors?.map((e) => e.extensions?.code)).toEqual(['AGENT_MISMATCH']);
      const reader: Caller = { url: running.url, headers: await identityHeaders('governance', { subject: 'reader', scopes: ['agents:read'] }) };
      expect((await rotate(reader)).errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);

      const tooLong = await rotate(dev, 10 * 24 * 3600);
      expect(tooLong.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'overlapSeconds' });
      const none = await gql(dev, ROTATE, { agentId: randomUUID(), overlap: 0 });
      expect(none.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    });

    it('revokeApiKey revokes an agent credential', async () => {
      const { secret, id } = await issue();
      await gql(dev, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id });
      expect((await gql(gateway, VERIFY, { key: secret })).data).toEqual({ verifyApiKey: null });
    });
  });

  it('refuses to start in production with the development switch', async () => {
    const result = await runToExit({
      args: ['scripts/subgraph.ts', 'governance'],
      env: {
        NODE_ENV: 'production',
        ALLOW_UNSIGNED_DEV: 'true',
        GATEWAY_SIGNING_SECRET: 'a-production-secret-of-at-least-32-bytes!',
        DATA_DIR: dataDir,
        GOVERNANCE_PORT: '0',
        DATABASE_URL: '',
      },
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('ALLOW_UNSIGNED_DEV: must not be true when NODE_ENV=production');
  });
});
