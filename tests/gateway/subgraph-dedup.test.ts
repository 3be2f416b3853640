// In-flight deduplication in the gateway's subgraph client, against the real agents subgraph. A TCP
// tap between them counts the requests really sent.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { GraphQLDataSourceRequestKind } from '@apollo/gateway/dist/datasources/types.js';
import { HeaderMap } from '@apollo/server';
import { parse } from 'graphql';
import type { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../../gateway/context.ts';
import { InflightDedup } from '../../gateway/dedup.ts';
import { createSubgraphAgent, SubgraphDataSource, type RawResponse } from '../../gateway/subgraph-client.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import type { Principal } from '../../gateway/auth/principal.ts';
import { createIdentityService, loadIdentityConfig } from '../../runtime/identity.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { silentLogger } from '../support/databases.ts';
import { gqlOk, startTcpTap, type TcpTap } from '../support/processes.ts';

let dataDir: string;
let subgraph: RunningSubgraph;
let ids: string[];
let tap: TcpTap;
let dispatcher: Agent;
let dedup: InflightDedup<RawResponse> | undefined;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'gateway-dedup-'));
  subgraph = await startSubgraph(agents, { DATA_DIR: dataDir, AGENTS_PORT: '0', LOG_LEVEL: 'silent', ...TEST_SECURITY_ENV });
  ids = [];
  for (const name of ['Ada', 'Grace']) {
    const data = await gqlOk<{ registerAgent: { id: string } }>(
      subgraph.url,
      'mutation ($name: String!) { registerAgent(input: { name: $name }) { id } }',
      { name },
      await identityHeaders('agents'),
    );
    ids.push(data.registerAgent.id);
  }
});

afterEach(async () => {
  await tap?.close();
  await dispatcher?.close();
});

afterAll(async () => {
  await subgraph?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const AGENT = 'query Agent($id: ID!) { agent(id: $id) { id name } }';
const HEARTBEAT = 'mutation Beat($id: ID!) { recordHeartbeat(id: $id) { id name } }';

async function source(withDedup: boolean, forwardHeaders: string[] = []): Promise<SubgraphDataSource> {
  tap = await startTcpTap(subgraph.port);
  dispatcher = createSubgraphAgent();
  dedup = withDedup ? new InflightDedup<RawResponse>() : undefined;
  const identity = createIdentityService(loadIdentityConfig(TEST_SECURITY_ENV));
  return new SubgraphDataSource({ name: 'agents', url: tap.url, dispatcher, timeoutMs: 5_000, forwardHeaders, logger: silentLogger, dedup, identity });
}

const ADMIN: Principal = { kind: 'user', subject: 'admin', tenantId: 'default', scopes: ['agents:read', 'agents:write'], expiresAt: null };

function call(
  s: SubgraphDataSource,
  query: string,
  variables: Record<string, unknown>,
  clientHeaders: Record<string, string> = {},
  requestId = 'r',
  principal: Principal = ADMIN,
) {
  const headers = new HeaderMap();
  for (const [k, v] of Object.entries(clientHeaders)) headers.set(k, v);
  const context: GatewayContext = { requestId, headers, logger: silentLogger, principal, remoteAddress: '127.0.0.1' };
  return s.process({
    kind: GraphQLDataSourceRequestKind.INCOMING_OPERATION,
    request: { query, variables },
    document: parse(query),
    incomingRequestContext: { overallCachePolicy: undefined } as unknown as GatewayGraphQLRequestContext<GatewayContext>,
    context,
  });
}

const sentRequests = () => tap.requestHeaders().length;

describe('in-flight deduplication of subgraph queries', () => {
  it('sends identical concurrent queries once, and every caller gets its own copy of the answer', async () => {
    const s = await source(true);
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => call(s, AGENT, { id: ids[0] }, {}, `req-${i}`)));
    for (const r of responses) expect(r).toEqual({ data: { agent: { id: ids[0], name: 'Ada' } } });
    expect(sentRequests()).toBe(1);
    expect(dedup?.stats()).toMatchObject({ sent: 1, joined: 7 });
    // The gateway merges entity data into what a fetch returned: callers must not share objects.
    const [first, second] = responses;
    expect(first?.data).not.toBe(second?.data);
    (first!.data as { agent: { name: string } }).agent.name = 'changed';
    expect(second?.data).toEqual({ agent: { id: ids[0], name: 'Ada' } });
  });

  it('sends queries with different variables separately', async () => {
    const s = await source(true);
    const [a, b] = await Promise.all([call(s, AGENT, { id: ids[0] }), call(s, AGENT, { id: ids[1] })]);
    expect(a?.data).toEqual({ agent: { id: ids[0], name: 'Ada' } });
    expect(b?.data).toEqual({ agent: { id: ids[1], name: 'Grace' } });
    expect(sentRequests()).toBe(2);
  });

  it('never shares between callers with different forwarded credentials, but ignores request ids', async () => {
    const s = await source(true, ['authorization']);
    await Promise.all([
      call(s, AGENT, { id: ids[0] }, { authorization: 'Bearer one' }, 'a'),
      call(s, AGENT, { id: ids[0] }, { authorization: 'Bearer two' }, 'b'),
      call(s, AGENT, { id: ids[0] }, { authorization: 'Bearer two' }, 'c'),
    ]);
    const sent = tap.requestHeaders();
    expect(sent.map((h) => h.authorization).sort()).toEqual(['Bearer one', 'Bearer two']);
  });

  it('never shares an answer between callers acting as different identities (tenant, scopes, subject)', async () => {
    const s = await source(true);
    const other: Principal = { ...ADMIN, tenantId: 'other-tenant' };
    const fewerScopes: Principal = { ...ADMIN, scopes: ['agents:read'] };
    const otherSubject: Principal = { ...ADMIN, subject: 'someone-else' };
    const [mine, theirs, narrower, sameAsMine, someoneElse] = await Promise.all([
      call(s, AGENT, { id: ids[0] }, {}, 'a', ADMIN),
      call(s, AGENT, { id: ids[0] }, {}, 'b', other),
      call(s, AGENT, { id: ids[0] }, {}, 'c', fewerScopes),
      call(s, AGENT, { id: ids[0] }, {}, 'd', { ...ADMIN, scopes: [...ADMIN.scopes].reverse() }),
      call(s, AGENT, { id: ids[0] }, {}, 'e', otherSubject),
    ]);
    // The other tenant's request reached the subgraph with its own identity: the agent is not its.
    expect(mine.data).toEqual({ agent: { id: ids[0], name: 'Ada' } });
    expect(theirs.data).toEqual({ agent: null });
    expect(narrower.data).toEqual(mine.data);
    expect(sameAsMine.data).toEqual(mine.data);
    expect(someoneElse.data).toEqual(mine.data);
    // Only the caller with the same identity (scopes in another order) joined.
    expect(sentRequests()).toBe(4);
    expect(dedup?.stats()).toMatchObject({ sent: 4, joined: 1 });
  });

  it('sends every mutation, however identical', async () => {
    const s = await source(true);
    const responses = await Promise.all(Array.from({ length: 4 }, () => call(s, HEARTBEAT, { id: ids[1] })));
    for (const r of responses) expect(r.data).toEqual({ recordHeartbeat: { id: ids[1], name: 'Grace' } });
    expect(sentRequests()).toBe(4);
    expect(dedup?.stats().joined).toBe(0);
  });

  it('does not let a query sent after a mutation join a read that started before it (read-your-writes)', async () => {
    const s = await source(true);
    // All three start in the same tick: the first read is still in flight when the others are sent.
    const [before, beat, after] = await Promise.all([call(s, AGENT, { id: ids[0] }), call(s, HEARTBEAT, { id: ids[0] }), call(s, AGENT, { id: ids[0] })]);
    expect(before.data).toEqual({ agent: { id: ids[0], name: 'Ada' } });
    expect(beat.data).toEqual({ recordHeartbeat: { id: ids[0], name: 'Ada' } });
    expect(after.data).toEqual({ agent: { id: ids[0], name: 'Ada' } });
    expect(sentRequests()).toBe(3);
    expect(dedup?.stats().joined).toBe(0);
  });

  it('sends every query when turned off', async () => {
    const s = await source(false);
    await Promise.all(Array.from({ length: 4 }, () => call(s, AGENT, { id: ids[0] })));
    expect(sentRequests()).toBe(4);
  });
});
