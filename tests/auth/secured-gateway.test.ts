// The gateway with access control, against the real agents and governance subgraphs over HTTP:
// denied fields come back null with their error, the subgraph owning them is never asked, and a
// query plan made for one caller never serves another.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../gateway/auth/principal.ts';
import { withAccessControl } from '../../gateway/auth/secured-gateway.ts';
import { toGatewaySupergraph } from '../../gateway/auth/supergraph-policy.ts';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { governance } from '../../subgraphs/governance/index.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';
import { gqlOk } from '../support/processes.ts';

type Context = { principal: Principal };
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const anonymous: Principal = { kind: 'anonymous', subject: null, tenantId: null, scopes: [], expiresAt: null };
const admin: Principal = { kind: 'user', subject: 'root', tenantId: 'default', scopes: ['admin', 'agents:read'], expiresAt: null };
const reader: Principal = { kind: 'user', subject: 'ann', tenantId: 'default', scopes: ['agents:read'], expiresAt: null };

describe('gateway with access control', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'secured-gateway-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  let agentsSubgraph: RunningSubgraph;
  let governanceSubgraph: RunningSubgraph;
  let apollo: ApolloServer<Context>;
  let keyId: string;

  beforeAll(async () => {
    const env = {
      ...process.env,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      AGENTS_PORT: '0',
      GOVERNANCE_PORT: '0',
      ALLOW_UNSIGNED_DEV: 'true',
      // No periodic outbox relay or key pruning while a test counts governance's statements.
      OUTBOX_RELAY_INTERVAL_MS: '3600000',
      IDEMPOTENCY_PRUNE_INTERVAL_MS: '3600000',
    };
    [agentsSubgraph, governanceSubgraph] = await Promise.all([startSubgraph(agents, env), startSubgraph(governance, env)]);
    const urls: Record<string, string> = { agents: agentsSubgraph.url, governance: governanceSubgraph.url };
    const gateway = new ApolloGateway({
      supergraphSdl: toGatewaySupergraph(readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8')),
      buildService: ({ name, url }) => new RemoteGraphQLDataSource({ url: urls[name] ?? url }),
      logger: quiet,
    });
    apollo = new ApolloServer<Context>({ gateway: withAccessControl(gateway, { principalOf: (context) => (context as Context).principal }), logger: quiet });
    await apollo.start();
    const created = await gqlOk<{ createApiKey: { apiKey: { id: string } } }>(
      governanceSubgraph.url,
      'mutation { createApiKey(input: { name: "existing", scopes: ["agents:read"] }) { apiKey { id } } }',
    );
    keyId = created.createApiKey.apiKey.id;
  });
  afterAll(async () => {
    await apollo?.stop();
    await agentsSubgraph?.stop();
    await governanceSubgraph?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await Promise.all([dropSchema(`${schemaPrefix}agents`), dropSchema(`${schemaPrefix}governance`)]);
  });

  async function run(principal: Principal, query: string, variables?: Record<string, unknown>) {
    const response = await apollo.executeOperation({ query, variables }, { contextValue: { principal } });
    if (response.body.kind !== 'single') throw new Error('expected a single result');
    const { data, errors } = response.body.singleResult;
    return { data, errors: errors?.map((e) => ({ path: e.path, code: e.extensions?.code, message: e.message })) };
  }

  const QUERY = 'query Mixed($id: ID!) { agents { totalCount } apiKey(id: $id) { name } }';

  it('nulls what the caller may not see, without asking the subgraph that owns it', async () => {
    const before = governanceSubgraph.database.stats.queries;
    const result = await run(anonymous, 'query Key($id: ID!) { apiKey(id: $id) { name } }', { id: keyId });
    expect(result).toEqual({
      data: { apiKey: null },
      errors: [{ path: ['apiKey'], code: 'UNAUTHENTICATED', message: 'Authentication is required to access Query.apiKey' }],
    });
    expect(governanceSubgraph.database.stats.queries).toBe(before);
    // A non-null field denied takes its parent with it, like any field error.
    const agentsBefore = agentsSubgraph.database.stats.queries;
    const both = await run(anonymous, QUERY, { id: keyId });
    expect(both.data).toBeNull();
    expect(both.errors?.map((e) => [e.path, e.code])).toEqual([
      [['agents'], 'UNAUTHENTICATED'],
      [['apiKey'], 'UNAUTHENTICATED'],
    ]);
    expect(agentsSubgraph.database.stats.queries).toBe(agentsBefore);
  });

  it('serves the same operation in full to a caller allowed to see it, and keeps plans apart', async () => {
    expect(await run(admin, QUERY, { id: keyId })).toEqual({ data: { agents: { totalCount: 0 }, apiKey: { name: 'existing' } }, errors: undefined });
    // The admin's plan (which fetches from governance) is cached; it must not serve the next caller.
    const before = governanceSubgraph.database.stats.queries;
    const again = await run(reader, QUERY, { id: keyId });
    expect(again.data).toEqual({ agents: { totalCount: 0 }, apiKey: null });
    expect(again.errors).toEqual([{ path: ['apiKey'], code: 'FORBIDDEN', message: 'Not allowed to access Query.apiKey: requires scope admin' }]);
    expect(governanceSubgraph.database.stats.queries).toBe(before);
  });

  it('does not run a denied mutation', async () => {
    const result = await run(reader, 'mutation { createApiKey(input: { name: "sneaky", scopes: ["admin"] }) { secret } }');
    expect(result).toEqual({ data: null, errors: [expect.objectContaining({ path: ['createApiKey'], code: 'FORBIDDEN' })] });
    const names = await gqlOk<{ apiKeys: { nodes: { name: string }[] } }>(governanceSubgraph.url, '{ apiKeys(includeRevoked: true) { nodes { name } } }');
    expect(names.apiKeys.nodes.map((n) => n.name)).toEqual(['existing']);
  });
});
