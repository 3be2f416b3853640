// The gateway's API key check against the real governance subgraph, over HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyVerifier } from '../../gateway/auth/api-keys.ts';
import { AuthError } from '../../gateway/auth/principal.ts';
import { createIdentityService, loadIdentityConfig } from '../../runtime/identity.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { governance } from '../../subgraphs/governance/index.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';
import { gqlOk } from '../support/processes.ts';

describe('API keys at the gateway', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'api-keys-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  const identity = createIdentityService(loadIdentityConfig({ NODE_ENV: 'test' }));
  let subgraph: RunningSubgraph;
  let calls = 0;
  const countingFetch: typeof fetch = (input, init) => {
    calls += 1;
    return fetch(input, init);
  };

  beforeAll(async () => {
    // Until the runtime checks identity tokens (part 2) the development switch stands in for them.
    subgraph = await startSubgraph(governance, {
      ...process.env,
      GOVERNANCE_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      ALLOW_UNSIGNED_DEV: 'true',
    });
  });
  afterAll(async () => {
    await subgraph?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${schemaPrefix}governance`);
  });

  async function createKey(scopes: string[]) {
    const data = await gqlOk<{ createApiKey: { secret: string; apiKey: { id: string } } }>(
      subgraph.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }',
      { input: { name: 'partner', scopes } },
    );
    return data.createApiKey;
  }

  it('turns a valid key into its principal, and remembers it for a while', async () => {
    const { secret, apiKey } = await createKey(['agents:read', 'tasks:write']);
    let now = 1_000_000;
    const verifier = createApiKeyVerifier({ url: subgraph.url, identity, fetch: countingFetch, cacheMs: 10_000, clock: () => now });
    calls = 0;
    const principal = await verifier.verify(secret, 'req-1');
    expect(principal).toEqual({
      kind: 'apiKey',
      subject: `apikey:${apiKey.id}`,
      tenantId: 'default',
      scopes: ['agents:read', 'tasks:write'],
      expiresAt: null,
      apiKeyId: apiKey.id,
    });
    await verifier.verify(secret);
    expect(calls).toBe(1);
    now += 10_001;
    await verifier.verify(secret);
    expect(calls).toBe(2);
  });

  it('gives an agent credential’s principal the agent it acts as', async () => {
    const agentId = randomUUID();
    // Minted as the agents subgraph does when it registers an agent with issueCredential.
    const asAgentsSubgraph = await identity.signIdentity(
      { kind: 'service', subject: 'subgraph:agents:test', tenantId: 'default', scopes: ['agents:write'] },
      'governance',
    );
    const minted = await gqlOk<{ issueAgentCredential: { secret: string; apiKey: { id: string } } }>(
      subgraph.url,
      'mutation($a: ID!) { issueAgentCredential(agentId: $a) { secret apiKey { id } } }',
      { a: agentId },
      { 'x-gateway-identity': asAgentsSubgraph },
    );
    const verifier = createApiKeyVerifier({ url: subgraph.url, identity, cacheMs: 0 });
    const principal = await verifier.verify(minted.issueAgentCredential.secret);
    expect(principal).toEqual({
      kind: 'apiKey',
      subject: `apikey:${minted.issueAgentCredential.apiKey.id}`,
      tenantId: 'default',
      scopes: ['agents:read', 'agents:write', 'collaboration:read', 'collaboration:write', 'memory:read', 'memory:write', 'tasks:read', 'tasks:write'],
      expiresAt: null,
      apiKeyId: minted.issueAgentCredential.apiKey.id,
      agentId,
    });
    // A partner key acts for no agent.
    const { secret } = await createKey(['agents:read']);
    expect((await verifier.verify(secret)).agentId).toBeUndefined();
  });

  it('refuses a wrong, malformed or revoked key with 401', async () => {
    const { secret, apiKey } = await createKey(['agents:read']);
    const verifier = createApiKeyVerifier({ url: subgraph.url, identity, cacheMs: 0 });
    const reasonOf = (key: string) =>
      verifier.verify(key).then(
        () => 'accepted',
        (e: unknown) => (e instanceof AuthError ? `${e.reason} ${e.status}` : String(e)),
      );
    expect(await reasonOf(secret)).toBe('accepted');
    expect(await reasonOf(secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'))).toBe('invalid api key 401');
    expect(await reasonOf('nonsense')).toBe('invalid api key 401');
    expect(await reasonOf('x'.repeat(1000))).toBe('invalid api key 401');
    await gqlOk(subgraph.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: apiKey.id });
    expect(await reasonOf(secret)).toBe('invalid api key 401');
  });

  it('asks governance wherever the url function says at the time of each check, and 503 when it says nowhere', async () => {
    const { secret } = await createKey(['agents:read']);
    let url: string | undefined;
    const asked: string[] = [];
    const recordingFetch: typeof fetch = (input, init) => {
      asked.push(String(input));
      return fetch(input, init);
    };
    const verifier = createApiKeyVerifier({ url: () => url, identity, fetch: recordingFetch, cacheMs: 0 });
    await expect(verifier.verify(secret)).rejects.toMatchObject({
      reason: 'keys unavailable',
      status: 503,
      message: expect.stringContaining('no governance subgraph is routed'),
    });
    expect(asked).toEqual([]);
    url = 'http://127.0.0.1:1/graphql';
    await expect(verifier.verify(secret)).rejects.toMatchObject({ reason: 'keys unavailable', status: 503 });
    url = subgraph.url;
    await expect(verifier.verify(secret)).resolves.toMatchObject({ kind: 'apiKey', scopes: ['agents:read'] });
    expect(asked).toEqual(['http://127.0.0.1:1/graphql', subgraph.url]);
  });

  it('says the check is unavailable (503) when governance cannot be reached, and logs why', async () => {
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { warn: (fields: Record<string, unknown>, message: string) => void warnings.push({ fields, message }) };
    const verifier = createApiKeyVerifier({ url: 'http://127.0.0.1:1/graphql', identity, timeoutMs: 500, logger: logger as never });
    await expect(verifier.verify(`ap_0123456789abcdef_${'A'.repeat(43)}`, 'req-9')).rejects.toMatchObject({ reason: 'keys unavailable', status: 503 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toBe('API key check failed: governance could not answer');
    expect(warnings[0]!.fields).toMatchObject({ url: 'http://127.0.0.1:1/graphql', requestId: 'req-9', err: expect.any(Error) });
  });

  it('shares one question to governance among concurrent checks of the same key', async () => {
    const { secret } = await createKey(['agents:read']);
    const verifier = createApiKeyVerifier({ url: subgraph.url, identity, fetch: countingFetch, cacheMs: 10_000 });
    calls = 0;
    const principals = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(secret)));
    expect(calls).toBe(1);
    expect(new Set(principals.map((p) => p.apiKeyId)).size).toBe(1);
    // A different key is its own question.
    const other = await createKey(['agents:read']);
    await Promise.all([verifier.verify(other.secret), verifier.verify(other.secret)]);
    expect(calls).toBe(2);
  });
});
