// API keys follow the governance subgraph when a supergraph reload moves it: the gateway checks
// keys with governance wherever the supergraph served now routes it, not where it was at start.
// Real processes: governance (then a second one on another port, same data) and the gateway,
// which takes governance's URL from the supergraph file only (no SUBGRAPH_GOVERNANCE_URL).
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';
import { getFreePort, gql, gqlOk, manageProcesses, startProcess, TEST_RATE_LIMITS, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

const GOVERNANCE_ROUTE = /(GOVERNANCE @join__graph\(name: "governance", url: ")[^"]*(")/;

let dir: string;
let supergraphPath: string;
let common: Record<string, string>;
let schemaPrefix: string;
let governance: ServiceProcess;
let gateway: ServiceProcess;

async function startGovernance(name: string): Promise<ServiceProcess> {
  const port = await getFreePort();
  return startProcess({ name, args: ['scripts/subgraph.ts', 'governance'], port, env: { ...common, GOVERNANCE_PORT: String(port) } });
}

function routeGovernanceTo(url: string): void {
  const sdl = readFileSync(supergraphPath, 'utf8');
  expect(sdl).toMatch(GOVERNANCE_ROUTE);
  writeFileSync(supergraphPath, sdl.replace(GOVERNANCE_ROUTE, `$1${url}$2`));
}

const graphqlRequests = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-apikey-reload-'));
  schemaPrefix = `e2e${randomBytes(4).toString('hex')}_`;
  common = { DATA_DIR: dir, DATABASE_SCHEMA_PREFIX: schemaPrefix, EVENT_CHANNEL_PREFIX: schemaPrefix, LOG_LEVEL: 'info', ...TEST_SECURITY_ENV };
  governance = await startGovernance('governance-1');
  supergraphPath = join(dir, 'supergraph.graphql');
  copyFileSync(DEFAULT_SUPERGRAPH_PATH, supergraphPath);
  routeGovernanceTo(governance.url);
  const port = await getFreePort();
  gateway = await startProcess({
    name: 'gateway',
    args: ['gateway/main.ts'],
    port,
    env: {
      ...common,
      GATEWAY_PORT: String(port),
      SUPERGRAPH_PATH: supergraphPath,
      SUPERGRAPH_POLL_MS: '250',
      // Every request asks governance, so the test sees where the gateway asks.
      API_KEY_CACHE_MS: '0',
      ...TEST_RATE_LIMITS,
    },
  });
});

afterAll(async () => {
  await gateway?.stop();
  await governance?.stop();
  if (DATABASE_URL && schemaPrefix) await dropSchema(`${schemaPrefix}governance`);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('API keys after a supergraph reload moves governance', () => {
  it('are checked with the governance the new supergraph routes to', async () => {
    const atStart = graphqlRequests(governance);
    const created = await gqlOk<{ createApiKey: { secret: string } }>(
      gateway.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
      { input: { name: 'partner', scopes: ['agents:read'] } },
    );
    const key = { 'x-api-key': created.createApiKey.secret };
    // Log lines may reach us a moment after the answer did: count from createApiKey's own line.
    await expect.poll(() => graphqlRequests(governance)).toBe(atStart + 1);
    // `{ __typename }` needs no subgraph: the only request it causes is the key check.
    const before = graphqlRequests(governance);
    const first = await gql(gateway.url, '{ __typename }', undefined, key);
    expect(first.status).toBe(200);
    expect(first.data).toEqual({ __typename: 'Query' });
    // Its log line may reach us a moment after the answer did.
    await expect.poll(() => graphqlRequests(governance)).toBe(before + 1);

    // Governance moves: the old process goes away, a new one serves the same data on another port.
    const old = governance;
    await old.stop();
    expect((await old.exited()).code ?? 0).toBe(0);
    const gone = await gql(gateway.url, '{ __typename }', undefined, key);
    expect(gone.status).toBe(503);
    expect(gone.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'keys unavailable' });

    governance = await startGovernance('governance-2');
    expect(governance.port).not.toBe(old.port);
    routeGovernanceTo(governance.url);
    await expect
      .poll(() => gateway.jsonLogs().some((l) => l.msg === 'subgraph route' && l.subgraph === 'governance' && l.url === governance.url), { timeout: 15_000 })
      .toBe(true);

    const moved = await gql(gateway.url, '{ __typename }', undefined, key);
    expect(moved.status).toBe(200);
    expect(moved.data).toEqual({ __typename: 'Query' });
    await expect.poll(() => graphqlRequests(governance)).toBe(1);
    // A wrong key is still told apart from an unavailable check.
    const wrong = await gql(gateway.url, '{ __typename }', undefined, { 'x-api-key': `${created.createApiKey.secret.slice(0, -2)}xx` });
    expect(wrong.status).toBe(401);
    expect(wrong.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'invalid api key' });
    expect(gateway.jsonLogs().filter((l) => l.msg === 'supergraph reloaded')).toHaveLength(1);
  });
});
