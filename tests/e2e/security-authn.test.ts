// Authentication end to end, against real processes: user tokens (HS256 and a rotating JWKS), API
// keys, graphql-ws connection_init, and the gateway → subgraph trust (signed identities only).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEV_AUDIENCE, DEV_ISSUER } from '../../gateway/auth/config.ts';
import { bearer, identityHeaders, userToken } from '../support/auth.ts';
import { gql, gqlOk, manageProcesses, startGatewayProcess, startPlatform, subgraphsOf, type Platform, type ServiceProcess } from '../support/processes.ts';
import { gatewayStats, subscribe, waitFor, wsClient } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-authn-'));
  // Revocation must show at once here; in production a valid key is trusted for API_KEY_CACHE_MS.
  platform = await startPlatform({ dataDir, gatewayEnv: { API_KEY_CACHE_MS: '0' } });
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const AGENTS = '{ agents { totalCount } }';
const requestLines = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('user tokens at the gateway', () => {
  it('without credentials, protected fields come back null with UNAUTHENTICATED and no subgraph is asked', async () => {
    const before = requestLines(platform.agents);
    const res = await gql(platform.url, AGENTS, undefined, { authorization: '' });
    expect(res.status).toBe(200);
    expect(res.data).toBeNull();
    expect(res.errors).toEqual([expect.objectContaining({ path: ['agents'], extensions: expect.objectContaining({ code: 'UNAUTHENTICATED' }) })]);
    expect(requestLines(platform.agents)).toBe(before);
  });

  it('accepts a valid token, acting in its tenant', async () => {
    const res = await gql<{ agents: { totalCount: number } }>(platform.url, AGENTS, undefined, await bearer({ tenant: 'authn-tenant' }));
    expect(res.errors).toBeUndefined();
    expect(res.data).toEqual({ agents: { totalCount: 0 } });
  });

  it.each([
    ['expired', { expiresIn: -60 }, 'expired'],
    ['not yet valid', { notBefore: 600 }, 'not yet valid'],
    ['from another issuer', { issuer: 'https://evil.example' }, 'wrong issuer'],
    ['for another audience', { audience: 'someone-else' }, 'wrong audience'],
    ['signed with another secret', { secret: 'an-attacker-secret-that-is-at-least-32-bytes' }, 'bad signature'],
  ] as const)('refuses a token %s with 401 UNAUTHENTICATED', async (_what, options, reason) => {
    const res = await gql(platform.url, AGENTS, undefined, await bearer(options));
    expect(res.status).toBe(401);
    expect(res.data ?? null).toBeNull();
    expect(res.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', reason }) })]);
    expect(JSON.stringify(res.errors)).not.toMatch(/stacktrace|\.ts:\d+/);
  });

  it('refuses a tampered token (claims changed after signing) and an alg:none token', async () => {
    const [header, payload, signature] = (await userToken({ tenant: 'mine', scopes: ['agents:read'] })).split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${header}.${b64url({ ...claims, tenant: 'someone-elses', scope: 'admin agents:read' })}.${signature}`;
    const forged = await gql(platform.url, AGENTS, undefined, { authorization: `Bearer ${tampered}` });
    expect(forged.status).toBe(401);
    expect(forged.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'bad signature' });

    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, scope: 'admin' })}.`;
    const none = await gql(platform.url, AGENTS, undefined, { authorization: `Bearer ${unsigned}` });
    expect(none.status).toBe(401);
    expect(none.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'unsupported alg' });

    const garbage = await gql(platform.url, AGENTS, undefined, { authorization: 'Bearer not-a-jwt' });
    expect(garbage.status).toBe(401);
  });
});

describe('tokens from an identity provider (JWKS), with key rotation', () => {
  let jwks: { keys: JWK[] } = { keys: [] };
  let fetches = 0;
  let server: Server;
  let gateway: ServiceProcess;
  const keys: Record<string, Awaited<ReturnType<typeof generateKeyPair>>['privateKey']> = {};

  async function addKey(kid: string): Promise<JWK> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    keys[kid] = privateKey;
    return { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  }

  const rsToken = (kid: string, tenant = 'jwks-tenant') => {
    const key = keys[kid];
    if (!key) throw new Error(`no key ${kid}`);
    return new SignJWT({ tenant, scope: 'agents:read' })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setSubject('idp-user')
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key);
  };

  beforeAll(async () => {
    jwks = { keys: [await addKey('k1')] };
    server = createServer((_req, res) => {
      fetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    gateway = await startGatewayProcess({
      name: 'gateway-jwks',
      subgraphs: subgraphsOf(platform),
      env: { AUTH_JWKS_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, AUTH_JWKS_COOLDOWN_MS: '0' },
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it('accepts tokens of the current key, fetches the keys once, and picks up a rotated key', async () => {
    expect(await gqlOk(gateway.url, AGENTS, undefined, { authorization: `Bearer ${await rsToken('k1')}` })).toEqual({ agents: { totalCount: 0 } });
    await gqlOk(gateway.url, AGENTS, undefined, { authorization: `Bearer ${await rsToken('k1')}` });
    expect(fetches).toBe(1);

    // The provider rotates: k2 replaces k1.
    jwks = { keys: [await addKey('k2')] };
    expect(await gqlOk(gateway.url, AGENTS, undefined, { authorization: `Bearer ${await rsToken('k2')}` })).toEqual({ agents: { totalCount: 0 } });
    expect(fetches).toBe(2);
    // The retired key is gone from the refreshed set.
    const retired = await gql(gateway.url, AGENTS, undefined, { authorization: `Bearer ${await rsToken('k1')}` });
    expect(retired.status).toBe(401);
    expect(retired.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'unknown key' });
  });

  it('still refuses an HS256 token signed with a JWKS public key as its secret (algorithm confusion)', async () => {
    const jwk = jwks.keys[0];
    const forged = await new SignJWT({ tenant: 'jwks-tenant', scope: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: jwk?.kid ?? 'k2' })
      .setSubject('attacker')
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(JSON.stringify(jwk)));
    const res = await gql(gateway.url, AGENTS, undefined, { authorization: `Bearer ${forged}` });
    expect(res.status).toBe(401);
  });
});

describe('API keys', () => {
  const CREATE = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id prefix lastUsedAt } } }';

  it('are created by a tenant admin, shown once, scoped, record their use, and stop working when revoked', async () => {
    const admin = await bearer({ tenant: 'keys-tenant', scopes: ['admin', 'agents:read', 'agents:write'] });
    const { createApiKey } = await gqlOk<{ createApiKey: { secret: string; apiKey: { id: string; prefix: string; lastUsedAt: string | null } } }>(
      platform.url,
      CREATE,
      { input: { name: 'partner sync', scopes: ['agents:read'] } },
      admin,
    );
    const { secret, apiKey } = createApiKey;
    expect(secret.startsWith(apiKey.prefix)).toBe(true);
    expect(apiKey.lastUsedAt).toBeNull();

    // Both header forms; the key acts in its tenant with its scopes.
    await gqlOk(platform.url, 'mutation { registerAgent(input: { name: "Keyed" }) { id } }', undefined, admin);
    for (const headers of [{ 'x-api-key': secret }, { authorization: `ApiKey ${secret}` }] as Record<string, string>[]) {
      expect(await gqlOk(platform.url, AGENTS, undefined, headers)).toEqual({ agents: { totalCount: 1 } });
    }
    const write = await gql(platform.url, 'mutation { registerAgent(input: { name: "Not allowed" }) { id } }', undefined, { 'x-api-key': secret });
    expect(write.errors).toEqual([
      expect.objectContaining({ path: ['registerAgent'], extensions: expect.objectContaining({ code: 'FORBIDDEN', missingScopes: ['agents:write'] }) }),
    ]);

    const listed = await gqlOk<{ apiKeys: { nodes: { id: string; lastUsedAt: string | null }[] } }>(
      platform.url,
      '{ apiKeys { nodes { id lastUsedAt } } }',
      undefined,
      admin,
    );
    expect(listed.apiKeys.nodes.find((k) => k.id === apiKey.id)?.lastUsedAt).not.toBeNull();
    // The secret is never shown again.
    expect(JSON.stringify(listed)).not.toContain(secret);

    // A key cannot manage keys (no admin scope), even its own.
    const selfRevoke = await gql(platform.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: apiKey.id }, { 'x-api-key': secret });
    expect(selfRevoke.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    await gqlOk(platform.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id: apiKey.id }, admin);
    const revoked = await gql(platform.url, AGENTS, undefined, { 'x-api-key': secret });
    expect(revoked.status).toBe(401);
    expect(revoked.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'invalid api key' });
  });

  it('refuses a wrong key, and two different credentials at once', async () => {
    const wrong = await gql(platform.url, AGENTS, undefined, { 'x-api-key': 'ap_0123456789abcdef_notARealSecretAtAllxxxxxxxxxxxxxxxxxxxxxxxxxx' });
    expect(wrong.status).toBe(401);
    expect(wrong.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'invalid api key' });
    const both = await gql(platform.url, AGENTS, undefined, { ...(await bearer()), 'x-api-key': 'ap_whatever' });
    expect(both.status).toBe(401);
    expect(both.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'malformed' });
  });
});

describe('gateway → subgraph trust', () => {
  const post = async (url: string, headers: Record<string, string>, query = AGENTS) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
    return { status: res.status, body: (await res.json()) as { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] } };
  };

  it('a subgraph called directly without the gateway identity answers 401, even with a valid user token', async () => {
    for (const headers of [{}, await bearer()]) {
      const res = await post(platform.agents.url, headers);
      expect(res.status).toBe(401);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'missing' });
    }
    const tasks = await post(platform.orchestration.url, {}, '{ tasks { totalCount } }');
    expect(tasks.status).toBe(401);
  });

  it('refuses a forged gateway identity: another secret, another subgraph’s token, or a user token in its place', async () => {
    const forged = await post(platform.agents.url, await identityHeaders('agents', {}, 'not-the-platform-secret-but-32-bytes-long!!'));
    expect(forged.status).toBe(401);
    expect(forged.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'bad signature' });
    const replayed = await post(platform.agents.url, await identityHeaders('orchestration'));
    expect(replayed.status).toBe(401);
    expect(replayed.body.errors?.[0]?.extensions).toMatchObject({ reason: 'wrong audience' });
    const user = await post(platform.agents.url, { 'x-gateway-identity': await userToken() });
    expect(user.status).toBe(401);
    // The genuine article works: the signing secret is what makes the difference.
    const genuine = await post(platform.agents.url, await identityHeaders('agents', { tenantId: 'trust-tenant' }));
    expect(genuine).toEqual({ status: 200, body: { data: { agents: { totalCount: 0 } } } });
  });

  it('a subgraph’s graphql-ws endpoint refuses a subscription without the gateway identity', async () => {
    const client = wsClient(platform.orchestration.url, { connectionParams: {} });
    try {
      const sub = subscribe(client, { query: 'subscription { taskUpdated { kind } }' });
      const ending = await sub.ended;
      expect(ending.kind).toBe('error');
      expect(JSON.stringify(ending.kind === 'error' ? ending.error : null)).toContain('UNAUTHENTICATED');
    } finally {
      await client.dispose();
    }
  });
});

describe('graphql-ws connection_init', () => {
  async function closeCodeFor(payload: Record<string, unknown> | undefined): Promise<number> {
    const socket = new WebSocket(platform.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init', ...(payload ? { payload } : {}) }));
    return closed;
  }

  it('closes the socket with 4401 without credentials and 4403 with invalid ones', async () => {
    expect(await closeCodeFor(undefined)).toBe(4401);
    expect(await closeCodeFor({})).toBe(4401);
    expect(await closeCodeFor({ authorization: `Bearer ${await userToken({ expiresIn: -60 })}` })).toBe(4403);
    expect(await closeCodeFor({ token: 'garbage' })).toBe(4403);
    expect(await closeCodeFor({ apiKey: 'ap_0123456789abcdef_wrongwrongwrongwrongwrongwrongwrongwrongwro' })).toBe(4403);
  });

  it('ends a subscription when the token it was started with expires', async () => {
    const token = await userToken({ tenant: 'expiring', expiresIn: 3 });
    const client = wsClient(platform.url, { connectionParams: { authorization: `Bearer ${token}` } });
    try {
      const sub = subscribe(client, { query: 'subscription { agentHeartbeat { occurredAt } }' });
      const started = Date.now();
      const last = await sub.next(15_000);
      expect(last.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', reason: 'expired' }) })]);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await sub.ended).toEqual({ kind: 'complete' });
      await waitFor('the gateway released it', async () => {
        const stats = await gatewayStats(platform.url);
        return stats.clientSubscriptions === 0;
      });
    } finally {
      await client.dispose();
    }
  });
});

describe('GET /debug/subscriptions', () => {
  const statsUrl = () => platform.url.replace(/\/graphql$/, '/debug/subscriptions');
  const get = async (headers: Record<string, string> = {}) => {
    const res = await fetch(statsUrl(), { headers });
    return { status: res.status, body: (await res.json()) as { errors?: { extensions?: Record<string, unknown> }[] } & Record<string, unknown> };
  };

  it('answers only an admin, with the credentials of any other request: 401 without them, 403 without the admin scope', async () => {
    const anonymous = await get();
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(anonymous.body).not.toHaveProperty('clientSubscriptions');

    const invalid = await get({ authorization: 'Bearer not-a-token' });
    expect(invalid.status).toBe(401);
    expect(invalid.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'malformed' });

    const reader = await get(await bearer({ scopes: ['agents:read', 'tasks:read'] }));
    expect(reader.status).toBe(403);
    expect(reader.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', missingScopes: ['admin'] });

    const admin = await bearer({ tenant: 'stats-tenant', scopes: ['admin'] });
    const { createApiKey } = await gqlOk<{ createApiKey: { secret: string } }>(
      platform.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      { input: { name: 'stats reader', scopes: ['agents:read'] } },
      admin,
    );
    const keyed = await get({ 'x-api-key': createApiKey.secret });
    expect(keyed.status).toBe(403);
    expect(keyed.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN' });

    const allowed = await get(admin);
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({
      clientSubscriptions: expect.any(Number),
      webSocketConnections: expect.any(Number),
      sseConnections: expect.any(Number),
    });
  });
});
