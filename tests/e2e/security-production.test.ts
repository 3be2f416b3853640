// NODE_ENV=production end to end: the platform started the way production runs it (own user-token
// secret, issuer and audience; own gateway signing secret) answers real queries, refuses
// introspection, serves no GraphiQL, hides schema hints, and accepts no development credentials;
// INTROSPECTION / GRAPHIQL turn those back on; the development switches refuse to work at all.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET } from '../../gateway/auth/config.ts';
import { DEV_GATEWAY_SIGNING_SECRET } from '../../runtime/identity.ts';
import { TEST_SECURITY_ENV, userToken } from '../support/auth.ts';
import { gql, manageProcesses, runToExit, startGatewayProcess, startPlatform, subgraphsOf, type Platform, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

const PRODUCTION = { NODE_ENV: 'production' } as const;
const AUTH = {
  AUTH_JWT_SECRET: 'production-test-user-token-secret-0123456789abcdef',
  AUTH_ISSUER: 'https://idp.production.example',
  AUTH_AUDIENCE: 'agent-platform-production',
} as const;
const INTROSPECT = '{ __schema { queryType { name } } }';

let dataDir: string;
let platform: Platform;
let authorization: string;

async function browserGet(url: string) {
  const res = await fetch(url, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-production-'));
  platform = await startPlatform({ dataDir, env: PRODUCTION, gatewayEnv: AUTH });
  authorization = `Bearer ${await userToken({ secret: AUTH.AUTH_JWT_SECRET, issuer: AUTH.AUTH_ISSUER, audience: AUTH.AUTH_AUDIENCE, tenant: 'prod-tenant' })}`;
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('NODE_ENV=production', () => {
  it('answers a token from the configured issuer', async () => {
    const res = await gql(platform.url, '{ agents { totalCount } }', undefined, { authorization });
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ agents: { totalCount: 0 } });
  });

  it('refuses introspection with GRAPHQL_VALIDATION_FAILED, and gives no "Did you mean" hints', async () => {
    for (const query of [INTROSPECT, '{ __type(name: "Agent") { fields { name } } }']) {
      const res = await gql(platform.url, query, undefined, { authorization });
      expect(res.status).toBe(400);
      expect(res.data ?? null).toBeNull();
      expect(res.errors).toEqual([
        expect.objectContaining({
          message: expect.stringMatching(/introspection is not allowed/i),
          extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED' }),
        }),
      ]);
    }
    const typo = await gql(platform.url, '{ agentz { totalCount } }', undefined, { authorization });
    expect(typo.status).toBe(400);
    expect(typo.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(typo.errors)).not.toContain('Did you mean');
  });

  it('serves no GraphiQL to a browser at /graphql', async () => {
    const page = await browserGet(platform.url);
    expect(page.type).not.toContain('text/html');
    expect(page.text.toLowerCase()).not.toContain('graphiql');
    expect(page.status).toBeGreaterThanOrEqual(400);
  });

  it('accepts no development token, and no unsigned request at a subgraph', async () => {
    const devToken = await userToken();
    const res = await gql(platform.url, '{ agents { totalCount } }', undefined, { authorization: `Bearer ${devToken}` });
    expect(res.status).toBe(401);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    const direct = await gql(platform.agents.url, '{ agents { totalCount } }', undefined, { authorization: '' });
    expect(direct.status).toBe(401);
    expect(direct.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('INTROSPECTION=true and GRAPHIQL=true in production', () => {
  let gateway: ServiceProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      name: 'gateway-introspection',
      subgraphs: subgraphsOf(platform),
      env: { ...PRODUCTION, ...AUTH, INTROSPECTION: 'true', GRAPHIQL: 'true' },
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('turn introspection and GraphiQL back on', async () => {
    const res = await gql(gateway.url, INTROSPECT, undefined, { authorization });
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    const page = await browserGet(gateway.url);
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/html');
    expect(page.text.toLowerCase()).toContain('graphiql');
  });
});

describe('development switches refuse to work in production', () => {
  it('npm run token refuses to mint a development token', async () => {
    const result = await runToExit({ args: ['scripts/token.ts', '--tenant', 'acme'], env: { ...PRODUCTION, ...AUTH } });
    expect(result.code).toBe(1);
    expect(result.output).toContain('Refusing to mint a development token with NODE_ENV=production');
    expect(result.output).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });

  it('a subgraph refuses to start with ALLOW_UNSIGNED_DEV', async () => {
    const result = await runToExit({
      args: ['scripts/subgraph.ts', 'agents'],
      env: { ...PRODUCTION, ...TEST_SECURITY_ENV, ALLOW_UNSIGNED_DEV: 'true', AGENTS_PORT: '0', DATA_DIR: dataDir, DATABASE_URL: '' },
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('ALLOW_UNSIGNED_DEV: must not be true when NODE_ENV=production');
  });

  it('the gateway refuses to start on the development secrets or without its issuer and audience', async () => {
    const devSecrets = await runToExit({
      args: ['gateway/main.ts'],
      env: {
        ...PRODUCTION,
        GATEWAY_PORT: '0',
        GATEWAY_SIGNING_SECRET: DEV_GATEWAY_SIGNING_SECRET,
        AUTH_JWT_SECRET: DEV_JWT_SECRET,
        AUTH_ISSUER: '',
        AUTH_AUDIENCE: '',
      },
    });
    expect(devSecrets.code).toBe(1);
    for (const problem of [
      'AUTH_JWT_SECRET: is the public development secret',
      'GATEWAY_SIGNING_SECRET: is the public development secret',
      'AUTH_ISSUER: required when NODE_ENV=production',
      'AUTH_AUDIENCE: required when NODE_ENV=production',
    ]) {
      expect(devSecrets.output).toContain(problem);
    }
    const nothing = await runToExit({ args: ['gateway/main.ts'], env: { ...PRODUCTION, GATEWAY_PORT: '0', GATEWAY_SIGNING_SECRET: '', AUTH_JWT_SECRET: '' } });
    expect(nothing.code).toBe(1);
    expect(nothing.output).toContain('AUTH_JWKS_URL: required when NODE_ENV=production');
    expect(nothing.output).toContain('GATEWAY_SIGNING_SECRET: required when NODE_ENV=production');
    expect(devSecrets.output + nothing.output).not.toContain('gateway ready');
  });
});
