// The gateway's subgraph client against the real agents subgraph, started in-process with
// startSubgraph. A TCP tap between them counts the connections the client really opens and
// records the bytes it really sends.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { GraphQLDataSourceRequestKind } from '@apollo/gateway/dist/datasources/types.js';
import { HeaderMap } from '@apollo/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import type { GatewayContext } from '../../gateway/context.ts';
import { startGateway, type RunningGateway } from '../../gateway/server.ts';
import { createSubgraphAgent, SubgraphDataSource } from '../../gateway/subgraph-client.ts';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { createIdentityService, loadIdentityConfig } from '../../runtime/identity.ts';
import { defaultAuthorization, identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { silentLogger } from '../support/databases.ts';
import { getFreePort, gql, gqlOk, startTcpTap, type TcpTap } from '../support/processes.ts';

let dataDir: string;
let subgraph: RunningSubgraph;
let agentId: string;
let closedPortUrl: string;
const gateways: RunningGateway[] = [];
const taps: TcpTap[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'gateway-client-'));
  subgraph = await startSubgraph(agents, { DATA_DIR: dataDir, AGENTS_PORT: '0', LOG_LEVEL: 'silent', ...TEST_SECURITY_ENV });
  const data = await gqlOk<{ registerAgent: { id: string } }>(
    subgraph.url,
    'mutation { registerAgent(input: { name: "Keeper" }) { id } }',
    undefined,
    await identityHeaders('agents'),
  );
  agentId = data.registerAgent.id;
  closedPortUrl = `http://127.0.0.1:${await getFreePort()}/graphql`;
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await Promise.all(taps.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  await subgraph?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function tap(): Promise<TcpTap> {
  const t = await startTcpTap(subgraph.port);
  taps.push(t);
  return t;
}

/** A gateway in this process; orchestration is unreachable unless given, these tests query agents only. */
async function gateway(env: Record<string, string> = {}): Promise<RunningGateway> {
  const g = await startGateway({
    GATEWAY_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SUPERGRAPH_WATCH: 'false',
    SUBGRAPH_AGENTS_URL: subgraph.url,
    SUBGRAPH_ORCHESTRATION_URL: closedPortUrl,
    SUBGRAPH_GOVERNANCE_URL: closedPortUrl,
    ...TEST_SECURITY_ENV,
    ...env,
  });
  gateways.push(g);
  return g;
}

const AGENT_QUERY = 'query Agent($id: ID!) { agent(id: $id) { id name } }';

describe('SubgraphDataSource', () => {
  // Sequential requests need one socket; undici's pool may open a second when a request is
  // dispatched in the same tick the previous response completed. Without keep-alive it would be 25.
  it('reuses keep-alive connections for sequential requests', async () => {
    const t = await tap();
    const dispatcher = createSubgraphAgent();
    const identity = createIdentityService(loadIdentityConfig(TEST_SECURITY_ENV));
    const source = new SubgraphDataSource({ name: 'agents', url: t.url, dispatcher, timeoutMs: 5_000, forwardHeaders: [], logger: silentLogger, identity });
    const principal = { kind: 'user', subject: 'keeper', tenantId: 'default', scopes: ['agents:read'], expiresAt: null } as const;
    const context: GatewayContext = { requestId: 'keepalive-1', headers: new HeaderMap(), logger: silentLogger, principal, remoteAddress: '127.0.0.1' };
    try {
      for (let i = 0; i < 25; i++) {
        const response = await source.process({
          kind: GraphQLDataSourceRequestKind.INCOMING_OPERATION,
          request: { query: AGENT_QUERY, variables: { id: agentId } },
          // process() only reads the cache policy from the incoming request; none here.
          incomingRequestContext: { overallCachePolicy: undefined } as unknown as GatewayGraphQLRequestContext<GatewayContext>,
          context,
        });
        expect(response.errors).toBeUndefined();
        expect(response.data).toEqual({ agent: { id: agentId, name: 'Keeper' } });
      }
      expect(t.connections()).toBeLessThanOrEqual(2);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('gateway → subgraph transport', () => {
  it('keeps a small number of connections to a subgraph across many gateway requests', async () => {
    const t = await tap();
    const g = await gateway({ SUBGRAPH_AGENTS_URL: t.url });
    for (let i = 0; i < 30; i++) {
      const result = await gql(g.url, AGENT_QUERY, { id: agentId });
      expect(result.status).toBe(200);
      expect(result.data).toEqual({ agent: { id: agentId, name: 'Keeper' } });
    }
    expect(t.connections()).toBeLessThanOrEqual(2);
  });

  it('sends the request id, the configured client headers and a signed identity to the subgraph, and nothing else', async () => {
    const t = await tap();
    const g = await gateway({ SUBGRAPH_AGENTS_URL: t.url });
    const authorization = await defaultAuthorization();
    const result = await gql(
      g.url,
      AGENT_QUERY,
      { id: agentId },
      {
        'x-request-id': 'client-chosen-id-1',
        authorization,
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'vendor=abc',
        'accept-language': 'de-CH',
        cookie: 'session=do-not-forward',
      },
    );
    expect(result.status).toBe(200);
    expect(result.headers.get('x-request-id')).toBe('client-chosen-id-1');
    const sent = t.received().toLowerCase();
    expect(sent).toContain('x-request-id: client-chosen-id-1');
    // Credentials end at the gateway; the subgraph gets the caller as an identity token it signed.
    expect(sent).not.toContain('authorization:');
    expect(sent).not.toContain(authorization.slice(7).toLowerCase());
    expect(sent).toMatch(/x-gateway-identity: [\w-]+\.[\w-]+\.[\w-]+/);
    expect(sent).toContain('traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(sent).toContain('tracestate: vendor=abc');
    expect(sent).toContain('accept-language: de-ch');
    expect(sent).not.toContain('session=do-not-forward');
  });

  it('generates a request id when the client sends none and uses the same one downstream', async () => {
    const t = await tap();
    const g = await gateway({ SUBGRAPH_AGENTS_URL: t.url });
    const result = await gql(g.url, AGENT_QUERY, { id: agentId });
    const id = result.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(t.received().toLowerCase()).toContain(`x-request-id: ${id}`);
  });

  it('forwards exactly the headers FORWARD_HEADERS names', async () => {
    const t = await tap();
    const g = await gateway({ SUBGRAPH_AGENTS_URL: t.url, FORWARD_HEADERS: 'x-tenant' });
    await gql(g.url, AGENT_QUERY, { id: agentId }, { 'x-tenant': 'acme', 'accept-language': 'fr' });
    const sent = t.received().toLowerCase();
    expect(sent).toContain('x-tenant: acme');
    expect(sent).not.toContain('accept-language: fr');
    expect(sent).not.toContain('bearer');
  });

  it('forwards Idempotency-Key on mutations only, whatever FORWARD_HEADERS says', async () => {
    const t = await tap();
    const g = await gateway({ SUBGRAPH_AGENTS_URL: t.url, FORWARD_HEADERS: 'x-tenant' });
    await gql(g.url, AGENT_QUERY, { id: agentId }, { 'idempotency-key': 'read-key-1' });
    expect(t.received().toLowerCase()).not.toContain('read-key-1');
    await gql(g.url, `mutation { registerAgent(input: { name: "Keyed", skills: [{ id: "k", name: "K", tags: ["k"] }] }) { id } }`, undefined, {
      'idempotency-key': 'write-key-1',
    });
    expect(t.received().toLowerCase()).toContain('idempotency-key: write-key-1');
  });
});

describe('subgraph failures reach the client as SUBGRAPH_UNAVAILABLE naming the subgraph', () => {
  it('connection refused', async () => {
    const g = await gateway({ SUBGRAPH_AGENTS_URL: closedPortUrl });
    const result = await gql(g.url, AGENT_QUERY, { id: agentId });
    expect(result.status).toBe(200);
    expect(result.data).toEqual({ agent: null });
    const port = new URL(closedPortUrl).port;
    expect(result.errors).toEqual([
      {
        message: `Subgraph "agents" is unavailable: connect ECONNREFUSED 127.0.0.1:${port}`,
        extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
      },
    ]);
  });

  it('no answer within SUBGRAPH_TIMEOUT_MS', async () => {
    // Accepts connections and never answers, like a hung process.
    const held = new Set<Socket>();
    const blackHole: Server = createServer((socket) => void held.add(socket));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const port = (blackHole.address() as { port: number }).port;
    try {
      const g = await gateway({ SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${port}/graphql`, SUBGRAPH_TIMEOUT_MS: '300' });
      const started = Date.now();
      const result = await gql(g.url, AGENT_QUERY, { id: agentId });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(result.status).toBe(200);
      expect(result.data).toEqual({ agent: null });
      expect(result.errors).toEqual([
        { message: 'Subgraph "agents" is unavailable: no response within 300 ms', extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' } },
      ]);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
    }
  });

  it('reads an answer sent in pieces, a character split between them and a byte order mark first, as undici would', async () => {
    const text = Buffer.from(`\ufeff${JSON.stringify({ data: { agent: { id: agentId, name: 'Zoë ✓' } } })}`);
    const split = text.indexOf(Buffer.from('✓')) + 1;
    const pieces = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(text.subarray(0, split));
        setTimeout(() => res.end(text.subarray(split)), 20);
      });
    });
    await new Promise<void>((resolve) => pieces.listen(0, '127.0.0.1', resolve));
    try {
      const g = await gateway({ SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${(pieces.address() as { port: number }).port}/graphql` });
      expect(await gql(g.url, AGENT_QUERY, { id: agentId })).toMatchObject({ status: 200, data: { agent: { id: agentId, name: 'Zoë ✓' } } });
    } finally {
      await new Promise<void>((resolve) => pieces.close(() => resolve()));
    }
  });

  it('gives up at SUBGRAPH_TIMEOUT_MS even while the answer is still trickling in', async () => {
    const trickle = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"data":');
        const timer = setInterval(() => res.write(' '), 50);
        res.on('close', () => clearInterval(timer));
      });
    });
    await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
    try {
      const g = await gateway({ SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${(trickle.address() as { port: number }).port}/graphql`, SUBGRAPH_TIMEOUT_MS: '300' });
      const result = await gql(g.url, AGENT_QUERY, { id: agentId });
      expect(result.errors).toEqual([
        { message: 'Subgraph "agents" is unavailable: no response within 300 ms', extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' } },
      ]);
    } finally {
      trickle.closeAllConnections();
      await new Promise<void>((resolve) => trickle.close(() => resolve()));
    }
  });

  it('stops reading an answer past SUBGRAPH_MAX_RESPONSE_BYTES, with or without a length, and names the subgraph', async () => {
    const big = JSON.stringify({ data: { agent: { id: agentId, name: 'x'.repeat(5_000) } } });
    let chunked = false;
    const bloated = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (chunked) {
          // No content-length: the limit is found while reading.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(big.slice(0, 3_000));
          res.end(big.slice(3_000));
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
          res.end(big);
        }
      });
    });
    await new Promise<void>((resolve) => bloated.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(bloated.address() as { port: number }).port}/graphql`;
      const small = await gateway({ SUBGRAPH_AGENTS_URL: url, SUBGRAPH_MAX_RESPONSE_BYTES: '4096' });
      for (const mode of [false, true]) {
        chunked = mode;
        const result = await gql(small.url, AGENT_QUERY, { id: agentId });
        expect(result.status).toBe(200);
        expect(result.data).toEqual({ agent: null });
        expect(result.errors).toEqual([
          {
            message: 'Subgraph "agents" answered more than 4096 bytes (SUBGRAPH_MAX_RESPONSE_BYTES); ask for fewer items or fields',
            extensions: { code: 'SUBGRAPH_RESPONSE_TOO_LARGE', serviceName: 'agents', limit: 4096 },
          },
        ]);
      }
      // Under the limit the same answer goes through.
      const roomy = await gateway({ SUBGRAPH_AGENTS_URL: url, SUBGRAPH_MAX_RESPONSE_BYTES: '65536' });
      expect(await gql(roomy.url, AGENT_QUERY, { id: agentId })).toMatchObject({ status: 200, data: { agent: { id: agentId } } });
    } finally {
      bloated.closeAllConnections();
      await new Promise<void>((resolve) => bloated.close(() => resolve()));
    }
  });

  it('a non-GraphQL error status (wrong path)', async () => {
    const g = await gateway({ SUBGRAPH_AGENTS_URL: subgraph.url.replace(/\/graphql$/, '/not-graphql') });
    const result = await gql(g.url, AGENT_QUERY, { id: agentId });
    expect(result.status).toBe(200);
    expect(result.errors).toEqual([
      { message: 'Subgraph "agents" is unavailable: HTTP 404 Not Found', extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' } },
    ]);
  });

  it('but a subgraph rejecting the operation (schema drift) passes its own coded error on', async () => {
    // The supergraph promises a field the running agents subgraph does not have.
    const dir = mkdtempSync(join(tmpdir(), 'drift-'));
    const path = join(dir, 'supergraph.graphql');
    const drifted = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8').replace(
      '  name: String! @join__field(graph: AGENTS)\n',
      '  name: String! @join__field(graph: AGENTS)\n  nickname: String @join__field(graph: AGENTS)\n',
    );
    expect(drifted).toContain('nickname');
    writeFileSync(path, drifted);
    try {
      const g = await gateway({ SUPERGRAPH_PATH: path });
      const result = await gql(g.url, 'query($id: ID!) { agent(id: $id) { name nickname } }', { id: agentId });
      expect(result.status).toBe(200);
      expect(result.data).toEqual({ agent: null });
      expect(result.errors).toEqual([
        {
          message: expect.stringMatching(/^Cannot query field "nickname" on type "Agent"/),
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED', serviceName: 'agents' },
        },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
