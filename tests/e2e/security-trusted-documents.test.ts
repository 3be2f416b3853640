// Trusted documents end to end, against real processes: a client's operations go through
// `npm run trusted-documents` into a manifest, a gateway started with TRUSTED_DOCUMENTS=enforce
// runs only those and the REST facade's operations (over HTTP POST and GET, graphql-ws, SSE and
// REST), `log` runs everything but names what enforce would refuse, `off` changes nothing, and a
// bad manifest stops the gateway at start with the file and the problem named.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentIdOf, type PersistedQueryManifest } from '../../gateway/trusted-documents/index.ts';
import {
  gql,
  gqlOk,
  manageProcesses,
  runToExit,
  startGatewayProcess,
  startPlatform,
  subgraphsOf,
  withDefaultAuth,
  type Platform,
  type ServiceProcess,
} from '../support/processes.ts';
import { refusal, subscribe, wsClient } from '../subscriptions/support.ts';

manageProcesses();

// What a client application has in its .graphql files; a fragment shared between two files.
const CLIENT_FILES: Record<string, string> = {
  'agents.graphql': `query AgentNames { agents { totalCount nodes { ...AgentName } } }
mutation AddAgent($name: String!) { registerAgent(input: { name: $name }) { ...AgentName } }`,
  'fragments/agent.graphql': 'fragment AgentName on Agent { id name }',
  'tasks.graphql': `mutation SubmitTask($title: String!) { submitTask(input: { title: $title }) { id } }
subscription TaskKinds { taskUpdated { kind task { title } } }`,
};
const AD_HOC = '{ agents { totalCount } }';

let dir: string;
let manifestPath: string;
let manifest: PersistedQueryManifest;
let platform: Platform;

function operation(name: string): { id: string; body: string } {
  const op = manifest.operations.find((o) => o.name === name);
  if (!op) throw new Error(`${name} is not in the manifest`);
  return op;
}

async function post(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...(await withDefaultAuth(headers)) },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] },
  };
}

async function get(url: string, params: Record<string, string>) {
  const res = await fetch(`${url}?${new URLSearchParams(params)}`, {
    // Apollo's CSRF prevention wants a header a browser form cannot send on a GET.
    headers: { accept: 'application/graphql-response+json, application/json', 'apollo-require-preflight': 'true', ...(await withDefaultAuth()) },
  });
  return { status: res.status, body: (await res.json()) as { data?: Record<string, unknown> | null; errors?: { extensions?: Record<string, unknown> }[] } };
}

const graphqlRequests = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;

function startGateway(name: string, env: Record<string, string>): Promise<ServiceProcess> {
  return startGatewayProcess({ name, subgraphs: subgraphsOf(platform), env });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-trusted-'));
  const client = join(dir, 'client');
  for (const [name, text] of Object.entries(CLIENT_FILES)) {
    const path = join(client, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
  }
  manifestPath = join(dir, 'manifest.json');
  // The script as a user runs it: a glob over the client's files.
  const written = await runToExit({ args: ['scripts/trusted-documents.ts', join(client, '**/*.graphql'), '--out', manifestPath] });
  expect(written.code, written.output).toBe(0);
  manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as PersistedQueryManifest;
  platform = await startPlatform({ dataDir: dir, gatewayEnv: { TRUSTED_DOCUMENTS: 'enforce', TRUSTED_DOCUMENTS_MANIFEST: manifestPath } });
});

afterAll(async () => {
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm run trusted-documents', () => {
  it('writes an Apollo persisted query manifest of every operation, each body with the fragments it uses', () => {
    expect(manifest.format).toBe('apollo-persisted-query-manifest');
    expect(manifest.version).toBe(1);
    expect(manifest.operations.map((o) => [o.name, o.type])).toEqual([
      ['AddAgent', 'mutation'],
      ['AgentNames', 'query'],
      ['SubmitTask', 'mutation'],
      ['TaskKinds', 'subscription'],
    ]);
    expect(operation('AgentNames').body).toContain('fragment AgentName on Agent');
    expect(operation('SubmitTask').body).not.toContain('fragment');
    expect(operation('AgentNames').id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses operations the supergraph does not serve, naming them', async () => {
    writeFileSync(join(dir, 'bad.graphql'), 'query Broken { agents { nodes { nickname } } }');
    const result = await runToExit({ args: ['scripts/trusted-documents.ts', join(dir, 'bad.graphql'), '--out', join(dir, 'unused.json')] });
    expect(result.code).toBe(1);
    expect(result.output).toContain('Broken: Cannot query field "nickname" on type "Agent"');
  });
});

describe('TRUSTED_DOCUMENTS=enforce', () => {
  it('refuses an ad-hoc query with 403 OPERATION_NOT_TRUSTED before any subgraph is asked', async () => {
    const before = graphqlRequests(platform.agents);
    const res = await post(platform.url, { query: AD_HOC });
    expect(res.status).toBe(403);
    expect(res.body.data ?? null).toBeNull();
    expect(res.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'OPERATION_NOT_TRUSTED' } })]);
    // Over GET as well, and a mutation never runs.
    const viaGet = await get(platform.url, { query: AD_HOC });
    expect(viaGet.status).toBe(403);
    expect(viaGet.body.errors?.[0]?.extensions?.code).toBe('OPERATION_NOT_TRUSTED');
    const mutation = await post(platform.url, { query: 'mutation { registerAgent(input: { name: "Smuggled" }) { id } }' });
    expect(mutation.status).toBe(403);
    expect(graphqlRequests(platform.agents)).toBe(before);
  });

  it('does not even validate a refused document: no schema hints for guessed fields', async () => {
    const res = await post(platform.url, { query: '{ agentz { id } }' });
    expect(res.status).toBe(403);
    expect(JSON.stringify(res.body)).not.toMatch(/Did you mean|Cannot query/);
  });

  it('runs a registered document sent in full', async () => {
    await gqlOk(platform.url, operation('AddAgent').body, { name: 'Trusted' });
    const res = await post(platform.url, { query: operation('AgentNames').body });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data).toEqual({ agents: { totalCount: 1, nodes: [{ id: expect.any(String), name: 'Trusted' }] } });
  });

  it('runs a registered document named by its id alone: persistedQuery extension (POST and GET) or documentId', async () => {
    const { id } = operation('AgentNames');
    const expected = { agents: { totalCount: 1, nodes: [{ id: expect.any(String), name: 'Trusted' }] } };
    const apq = await post(platform.url, { extensions: { persistedQuery: { version: 1, sha256Hash: id } } });
    expect(apq).toEqual({ status: 200, body: { data: expected } });
    const viaGet = await get(platform.url, { extensions: JSON.stringify({ persistedQuery: { version: 1, sha256Hash: id } }) });
    expect(viaGet).toEqual({ status: 200, body: { data: expected } });
    const documentId = await post(platform.url, { documentId: `sha256:${id}` });
    expect(documentId).toEqual({ status: 200, body: { data: expected } });
    const getDocumentId = await get(platform.url, { documentId: id });
    expect(getDocumentId).toEqual({ status: 200, body: { data: expected } });
    // Variables travel with the id as usual.
    const added = await post(platform.url, { documentId: operation('AddAgent').id, variables: { name: 'By id' } });
    expect(added.status).toBe(200);
    expect(added.body.data).toEqual({ registerAgent: { id: expect.any(String), name: 'By id' } });
  });

  it('answers an unknown id with 404 PERSISTED_QUERY_NOT_FOUND, and a body that does not match its id with 400', async () => {
    const unknown = await post(platform.url, { extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } })]);
    const mismatch = await post(platform.url, {
      query: operation('AgentNames').body,
      extensions: { persistedQuery: { version: 1, sha256Hash: operation('AddAgent').id } },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });

  it('keeps every REST route working: their operations are always registered', async () => {
    const base = platform.url.replace(/\/graphql$/, '');
    const headers = await withDefaultAuth({ 'content-type': 'application/json' });
    const created = await fetch(`${base}/v1/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'Via REST' }) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const one = await fetch(`${base}/v1/agents/${id}`, { headers });
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ id, name: 'Via REST' });
    const list = await fetch(`${base}/v1/agents`, { headers });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { totalCount: number }).totalCount).toBe(3);
  });

  it('graphql-ws: refuses an unregistered subscription, runs a registered one sent in full or by id', async () => {
    const client = wsClient(platform.url);
    try {
      const refused = subscribe(client, { query: 'subscription { taskUpdated { kind } }' });
      expect(await refusal(refused)).toEqual([expect.objectContaining({ extensions: { code: 'OPERATION_NOT_TRUSTED' } })]);
      const adHocQuery = subscribe(client, { query: AD_HOC });
      expect(await refusal(adHocQuery)).toEqual([expect.objectContaining({ extensions: { code: 'OPERATION_NOT_TRUSTED' } })]);

      const full = subscribe(client, { query: operation('TaskKinds').body });
      // graphql-ws requires a query string: an id-only subscription sends "" with the extension.
      const idOnly = { query: '', extensions: { persistedQuery: { version: 1, sha256Hash: operation('TaskKinds').id } } };
      const byId = subscribe(client, idOnly);
      // Both are open once an event submitted after them reaches both.
      await expect
        .poll(
          async () => {
            await gqlOk(platform.url, operation('SubmitTask').body, { title: 'Seen' });
            return full.buffered.length > 0 && byId.buffered.length > 0;
          },
          { timeout: 15_000, interval: 300 },
        )
        .toBe(true);
      expect((await full.next()).data).toEqual({ taskUpdated: { kind: 'STATE_CHANGED', task: { title: 'Seen' } } });
      expect((await byId.next()).data).toEqual({ taskUpdated: { kind: 'STATE_CHANGED', task: { title: 'Seen' } } });
      full.unsubscribe();
      byId.unsubscribe();
    } finally {
      await client.dispose();
    }
  });

  it('SSE: refuses an unregistered subscription with 403', async () => {
    const res = await fetch(`${platform.url}/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(await withDefaultAuth()) },
      body: JSON.stringify({ query: 'subscription { taskUpdated { kind } }' }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ errors: [expect.objectContaining({ extensions: { code: 'OPERATION_NOT_TRUSTED' } })] });
  });

  it('logs the mode and what is registered at start', () => {
    const line = platform.gateway.jsonLogs().find((l) => l.msg === 'trusted documents');
    expect(line).toMatchObject({ mode: 'enforce', manifests: [{ path: manifestPath, operations: 4 }] });
    expect(line?.restOperations).toBeGreaterThan(10);
    expect(line?.documents).toBe((line?.restOperations as number) + 4);
  });
});

describe('TRUSTED_DOCUMENTS=log and off', () => {
  it('log: an ad-hoc query runs, and the gateway logs it with its id', async () => {
    const gateway = await startGateway('gateway-log', { TRUSTED_DOCUMENTS: 'log', TRUSTED_DOCUMENTS_MANIFEST: manifestPath });
    try {
      // Every use is logged, a repeat too (the gateway's fast path for repeated documents must not skip it).
      for (let i = 0; i < 2; i++) {
        const res = await gql(gateway.url, AD_HOC);
        expect(res.status).toBe(200);
        expect(res.data).toEqual({ agents: { totalCount: 3 } });
      }
      // Registered ones run without a log line, by id too.
      const byId = await post(gateway.url, { documentId: operation('AgentNames').id });
      expect(byId.status).toBe(200);
      // Log lines travel by pipe and may arrive a moment after the answers.
      const logged = expect.objectContaining({ level: 40, code: 'OPERATION_NOT_TRUSTED', transport: 'http', documentId: documentIdOf(AD_HOC) });
      await expect.poll(() => gateway.jsonLogs().filter((l) => String(l.msg).startsWith('untrusted document'))).toEqual([logged, logged]);
    } finally {
      await gateway.stop();
    }
  });

  it('off (the default): any operation runs, and nothing is logged about documents', async () => {
    const gateway = await startGateway('gateway-off', {});
    try {
      const res = await gql(gateway.url, AD_HOC);
      expect(res.status).toBe(200);
      expect(res.data).toEqual({ agents: { totalCount: 3 } });
      const logs = gateway.jsonLogs();
      expect(logs.filter((l) => String(l.msg).includes('trusted') || String(l.msg).includes('untrusted'))).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });
});

describe('a bad manifest', () => {
  it('stops the gateway at start, naming the file and every problem', async () => {
    const bad = join(dir, 'bad-manifest.json');
    const body = 'query Fine { agents { totalCount } }';
    writeFileSync(
      bad,
      JSON.stringify({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [
          { id: 'a'.repeat(64), name: 'Fine', type: 'query', body },
          { id: 'b'.repeat(64), name: 'Wrong', type: 'question', body },
        ],
      }),
    );
    const wrongId = join(dir, 'wrong-id.json');
    writeFileSync(
      wrongId,
      JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: 'a'.repeat(64), name: 'Fine', type: 'query', body }] }),
    );
    const missing = join(dir, 'nowhere.json');
    const result = await runToExit({
      args: ['gateway/main.ts'],
      env: { GATEWAY_PORT: '0', TRUSTED_DOCUMENTS: 'enforce', TRUSTED_DOCUMENTS_MANIFEST: [bad, wrongId, missing].join(',') },
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('Invalid configuration');
    expect(result.output).toContain(`TRUSTED_DOCUMENTS_MANIFEST: ${bad}: operations/1/type must be one of query, mutation, subscription`);
    expect(result.output).toContain(`TRUSTED_DOCUMENTS_MANIFEST: ${wrongId}: operations/0 (Fine): id is not the SHA-256 of its body`);
    expect(result.output).toContain(`TRUSTED_DOCUMENTS_MANIFEST: ${missing}: cannot be read (ENOENT)`);
    expect(result.output).not.toContain('gateway ready');

    const badMode = await runToExit({ args: ['gateway/main.ts'], env: { GATEWAY_PORT: '0', TRUSTED_DOCUMENTS: 'strict' } });
    expect(badMode.code).toBe(1);
    expect(badMode.output).toContain('TRUSTED_DOCUMENTS: expected one of off, log, enforce, got "strict"');
  });
});
