// The memory subgraph as a client sees it: the real server in-process, spoken to over HTTP with
// gateway identity tokens (an admin of the default tenant, an agent, or none).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { memory } from '../../subgraphs/memory/index.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema } from '../support/databases.ts';

interface GraphQLErrorBody {
  message: string;
  extensions?: Record<string, unknown> & { code?: string };
}
interface Response<D> {
  status: number;
  data?: D | null;
  errors?: GraphQLErrorBody[];
}
interface Caller {
  url: string;
  headers: Record<string, string>;
}

const FIELDS = 'id namespace kind text metadata importance vector dimension source { agentId taskId } expiresAt version';
const REMEMBER = `mutation($input: RememberInput!) { remember(input: $input) { ${FIELDS} } }`;
const BATCH = `mutation($inputs: [RememberInput!]!) { rememberBatch(inputs: $inputs) { ${FIELDS} } }`;
const SEARCH = `query($input: MemorySearchInput!) { searchMemories(input: $input) { score mode lexicalRank vectorRank vectorDistance fusedScore explanation memory { id text } } }`;

async function gql<D = Record<string, unknown>>(
  caller: Caller,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Response<D>> {
  const res = await fetch(caller.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...caller.headers, ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  expect(text).not.toMatch(/stacktrace|\\n\s*at\s|\.ts:\d+/);
  return { status: res.status, ...(JSON.parse(text) as Omit<Response<D>, 'status'>) };
}

const codeOf = (res: Response<unknown>) => res.errors?.[0]?.extensions?.code;

describe(`memory subgraph over HTTP (${DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'memory-http-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  const agentId = randomUUID();
  let running: RunningSubgraph;
  let admin: Caller;
  let agent: Caller;

  beforeAll(async () => {
    running = await startSubgraph(memory, {
      ...process.env,
      MEMORY_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      MEMORY_SWEEP_INTERVAL_MS: '50',
      ...TEST_SECURITY_ENV,
    });
    admin = { url: running.url, headers: await identityHeaders('memory') };
    agent = {
      url: running.url,
      headers: await identityHeaders('memory', { kind: 'apiKey', subject: 'agent-key', agentId, scopes: ['memory:read', 'memory:write'] }),
    };
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${schemaPrefix}memory`);
  });

  it('refuses a request without the gateway identity', async () => {
    const res = await gql({ url: running.url, headers: {} }, '{ memories { totalCount } }');
    expect(res.status).toBe(401);
    expect(codeOf(res)).toBe('UNAUTHENTICATED');
  });

  it('remembers, updates with history, lists by prefix and forgets', async () => {
    const created = await gql<{ remember: { id: string; version: number; source: { agentId: string | null } } }>(admin, REMEMBER, {
      input: { namespace: 'shared/http/facts', text: 'The office opens at nine', metadata: { floor: 3 }, importance: 0.6 },
    });
    expect(created.errors).toBeUndefined();
    const id = created.data!.remember.id;
    const updated = await gql<{ updateMemory: { version: number; text: string } }>(
      admin,
      `mutation($id: ID!) { updateMemory(id: $id, input: { text: "The office opens at eight" }, expectedVersion: 1) { version text } }`,
      { id },
    );
    expect(updated.data!.updateMemory).toEqual({ version: 2, text: 'The office opens at eight' });
    const history = await gql<{ memoryHistory: { version: number; text: string }[] }>(admin, `query($id: ID!) { memoryHistory(id: $id) { version text } }`, {
      id,
    });
    expect(history.data!.memoryHistory).toEqual([
      { version: 2, text: 'The office opens at eight' },
      { version: 1, text: 'The office opens at nine' },
    ]);
    const stale = await gql(admin, `mutation($id: ID!) { updateMemory(id: $id, input: { text: "x" }, expectedVersion: 1) { version } }`, { id });
    expect(codeOf(stale)).toBe('CONFLICT');
    const listed = await gql<{ memories: { totalCount: number; nodes: { id: string }[] } }>(
      admin,
      `{ memories(filter: { namespacePrefix: "shared/http" }) { totalCount nodes { id } } }`,
    );
    expect(listed.data!.memories.nodes.map((n) => n.id)).toContain(id);
    const forgot = await gql<{ forget: boolean }>(admin, `mutation($id: ID!) { forget(id: $id) }`, { id });
    expect(forgot.data!.forget).toBe(true);
    const gone = await gql<{ memory: unknown }>(admin, `query($id: ID!) { memory(id: $id) { id } }`, { id });
    expect(gone.data!.memory).toBeNull();
  });

  it('answers a keyed batch once and forgets by filter', async () => {
    const inputs = [1, 2, 3].map((i) => ({ namespace: 'shared/batch', text: `batch item ${i}`, kind: i === 3 ? 'EPISODIC' : 'SEMANTIC' }));
    const key = { 'idempotency-key': `batch-${randomUUID()}` };
    const first = await gql<{ rememberBatch: { id: string }[] }>(admin, BATCH, { inputs }, key);
    const again = await gql<{ rememberBatch: { id: string }[] }>(admin, BATCH, { inputs }, key);
    expect(first.data!.rememberBatch).toHaveLength(3);
    expect(again.data!.rememberBatch).toEqual(first.data!.rememberBatch);
    const reused = await gql(admin, BATCH, { inputs: inputs.slice(0, 1) }, key);
    expect(codeOf(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
    const refused = await gql(admin, `mutation { forgetMemories(filter: { kinds: [EPISODIC] }) { forgotten } }`);
    expect(codeOf(refused)).toBe('BAD_USER_INPUT');
    const forgot = await gql<{ forgetMemories: { forgotten: number } }>(
      admin,
      `mutation { forgetMemories(filter: { namespacePrefix: "shared/batch", kinds: [EPISODIC] }) { forgotten } }`,
    );
    expect(forgot.data!.forgetMemories.forgotten).toBe(1);
  });

  it('answers CONFLICT to a keyed repeat of a memory forgotten since', async () => {
    const key = { 'idempotency-key': `one-${randomUUID()}` };
    const input = { namespace: 'shared/keyed', text: 'remember me once' };
    const first = await gql<{ remember: { id: string } }>(admin, REMEMBER, { input }, key);
    const again = await gql<{ remember: { id: string } }>(admin, REMEMBER, { input }, key);
    expect(again.data!.remember.id).toBe(first.data!.remember.id);
    await gql(admin, `mutation($id: ID!) { forget(id: $id) }`, { id: first.data!.remember.id });
    const repeat = await gql(admin, REMEMBER, { input }, key);
    expect(codeOf(repeat)).toBe('CONFLICT');
  });

  it('searches lexically, by vector and hybrid, each hit explained', async () => {
    const inputs = [
      { namespace: 'shared/search', text: 'Rotate database credentials every month', vector: [1, 0, 0, 0] },
      { namespace: 'shared/search', text: 'Lunch menu for Friday', vector: [0.95, 0.05, 0, 0] },
      { namespace: 'shared/search', text: 'Database backups run nightly', vector: [0, 0, 1, 0] },
    ];
    const stored = await gql<{ rememberBatch: { id: string }[] }>(admin, BATCH, { inputs });
    const [rotate] = stored.data!.rememberBatch;
    type Hits = { searchMemories: { mode: string; memory: { id: string }; fusedScore: number | null; explanation: string; vectorRank: number | null }[] };
    const hybrid = await gql<Hits>(admin, SEARCH, {
      input: { text: 'database credentials', vector: [1, 0, 0, 0], filter: { namespacePrefix: 'shared/search' } },
    });
    expect(hybrid.errors).toBeUndefined();
    expect(hybrid.data!.searchMemories[0]).toMatchObject({ mode: 'HYBRID', memory: { id: rotate!.id }, vectorRank: 1 });
    expect(hybrid.data!.searchMemories[0]!.explanation).toMatch(/rrf\(k=60\)/);
    const lexical = await gql<Hits>(admin, SEARCH, { input: { text: 'backups' } });
    expect(lexical.data!.searchMemories.map((h) => h.mode)).toEqual(['LEXICAL']);
    const wrongDim = await gql(admin, SEARCH, { input: { vector: [1, 0] } });
    expect(codeOf(wrongDim)).toBe('DIMENSION_MISMATCH');
    expect(wrongDim.errors![0]!.extensions).toMatchObject({ expected: 4, actual: 2 });
    const tooMany = await gql(admin, SEARCH, { input: { text: 'x', k: 101 } });
    expect(codeOf(tooMany)).toBe('BAD_USER_INPUT');
    const badFilter = await gql(admin, SEARCH, { input: { text: 'x', filter: { metadata: [{ key: 'a', eq: { nested: true } }] } } });
    expect(codeOf(badFilter)).toBe('BAD_USER_INPUT');
    const nothingWritten = await gql(admin, REMEMBER, { input: { namespace: 'shared/search', text: 'x', vector: [1, 2] } });
    expect(codeOf(nothingWritten)).toBe('DIMENSION_MISMATCH');
  });

  it('lets an agent write only its own namespaces and read its own and shared ones', async () => {
    const own = await gql<{ remember: { id: string; source: { agentId: string } } }>(agent, REMEMBER, {
      input: { namespace: `agents/${agentId}/notes`, text: 'my note' },
    });
    expect(own.errors).toBeUndefined();
    expect(own.data!.remember.source.agentId).toBe(agentId);
    const other = await gql(agent, REMEMBER, { input: { namespace: `agents/${randomUUID()}/notes`, text: 'not mine' } });
    expect(codeOf(other)).toBe('AGENT_MISMATCH');
    const shared = await gql(agent, REMEMBER, { input: { namespace: 'shared/x', text: 'needs a scope' } });
    expect(codeOf(shared)).toBe('FORBIDDEN');
    const secret = await gql<{ remember: { id: string } }>(admin, REMEMBER, { input: { namespace: 'tasks/private', text: 'not for agents' } });
    const read = await gql<{ memory: unknown }>(agent, `query($id: ID!) { memory(id: $id) { id } }`, { id: secret.data!.remember.id });
    expect(read.data!.memory).toBeNull();
    const listed = await gql<{ memories: { nodes: { namespace: string }[] } }>(agent, `{ memories(first: 100) { nodes { namespace } } }`);
    expect(listed.data!.memories.nodes.length).toBeGreaterThan(0);
    for (const n of listed.data!.memories.nodes) expect(n.namespace.startsWith(`agents/${agentId}`) || n.namespace.startsWith('shared')).toBe(true);
    const otherPrefix = await gql(agent, `{ memories(filter: { namespacePrefix: "tasks" }) { totalCount } }`);
    expect(codeOf(otherPrefix)).toBe('AGENT_MISMATCH');
  });

  it('refuses oversize text and bad namespaces with the field named', async () => {
    const big = await gql(admin, REMEMBER, { input: { namespace: 'shared/x', text: 'x'.repeat(32_769) } });
    expect(codeOf(big)).toBe('BAD_USER_INPUT');
    expect(big.errors![0]!.extensions).toMatchObject({ field: 'input.text' });
    const bad = await gql(admin, REMEMBER, { input: { namespace: '../etc', text: 'x' } });
    expect(codeOf(bad)).toBe('BAD_USER_INPUT');
  });

  it('sweeps expired memories in the background', async () => {
    const res = await gql<{ remember: { id: string } }>(admin, REMEMBER, { input: { namespace: 'shared/ttl', text: 'soon gone', ttlSeconds: 1 } });
    const id = res.data!.remember.id;
    // Gone from reads once expired, and from the table once the sweeper ran.
    await expect
      .poll(
        async () =>
          (
            await running.database.db
              .selectFrom('memories' as never)
              .select('id' as never)
              .where('id' as never, '=', id as never)
              .execute()
          ).length,
        {
          timeout: 15_000,
          interval: 200,
        },
      )
      .toBe(0);
  });
});

// Scale-out: two replicas on one PostgreSQL schema. Each keeps its own vector index, fed by the
// outbox events before each search, so what one replica wrote, updated or forgot the other sees at once.
describe.skipIf(!DATABASE_URL)(`memory subgraph, two replicas on one PostgreSQL schema${DATABASE_URL ? '' : ' (skipped: DATABASE_URL is not set)'}`, () => {
  const schemaPrefix = `t${randomBytes(4).toString('hex')}_`;
  const replicas: RunningSubgraph[] = [];
  const callers: Caller[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'memory-replica-'));
      replicas.push(
        await startSubgraph(memory, {
          ...process.env,
          MEMORY_PORT: '0',
          DATA_DIR: dataDir,
          LOG_LEVEL: 'silent',
          DATABASE_SCHEMA_PREFIX: schemaPrefix,
          ...TEST_SECURITY_ENV,
        }),
      );
      callers.push({ url: replicas[i]!.url, headers: await identityHeaders('memory') });
    }
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await dropSchema(`${schemaPrefix}memory`);
  });

  it('finds on one replica what the other wrote', async () => {
    const [a, b] = callers as [Caller, Caller];
    const written = await gql<{ rememberBatch: { id: string }[] }>(a, BATCH, {
      inputs: [
        { namespace: 'shared/replicas', text: 'Replica alpha wrote this', vector: [1, 0] },
        { namespace: 'shared/replicas', text: 'Something else entirely', vector: [0, 1] },
      ],
    });
    expect(written.errors).toBeUndefined();
    const [first] = written.data!.rememberBatch;
    type Hits = { searchMemories: { mode: string; memory: { id: string } }[] };
    const hits = await gql<Hits>(b, SEARCH, { input: { text: 'alpha', vector: [1, 0.1] } });
    expect(hits.data!.searchMemories[0]).toMatchObject({ mode: 'HYBRID', memory: { id: first!.id } });
    // The dimension the first replica fixed holds on the second.
    expect(codeOf(await gql(b, REMEMBER, { input: { namespace: 'shared/replicas', text: 'x', vector: [1, 2, 3] } }))).toBe('DIMENSION_MISMATCH');

    // B's index holds both once loaded; then A moves one vector and forgets the other.
    type Status = { memoryVectorIndex: { engine: string; loaded: boolean; vectors: number; indexed: number; pending: number } };
    await vi.waitFor(async () => {
      const status = await gql<Status>(b, '{ memoryVectorIndex { engine loaded vectors indexed pending } }');
      expect(status.data!.memoryVectorIndex).toEqual({ engine: 'hnsw', loaded: true, vectors: 2, indexed: 2, pending: 0 });
    });
    const [, second] = written.data!.rememberBatch;
    const UPDATE = 'mutation($id: ID!, $input: UpdateMemoryInput!) { updateMemory(id: $id, input: $input) { version } }';
    expect((await gql(a, UPDATE, { id: second!.id, input: { vector: [1, 0.01] } })).errors).toBeUndefined();
    expect((await gql(a, 'mutation($id: ID!) { forget(id: $id) }', { id: first!.id })).errors).toBeUndefined();
    const after = await gql<Hits>(b, SEARCH, { input: { vector: [1, 0], k: 5 } });
    expect(after.data!.searchMemories.map((h) => h.memory.id)).toEqual([second!.id]);
  });
});

// An embeddings provider speaking the OpenAI-compatible API: a local server whose vectors are a
// deterministic bag of hashed words, so texts sharing words are near each other.
describe('memory subgraph with an embeddings provider', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'memory-embeddings-'));
  const schemaPrefix = DATABASE_URL ? `t${randomBytes(4).toString('hex')}_` : '';
  const requests: { model: string; input: string[]; authorization: string | undefined }[] = [];
  let provider: Server;
  let running: RunningSubgraph;
  let admin: Caller;

  function embedding(text: string): number[] {
    const v = new Array<number>(16).fill(0);
    for (const word of text.toLowerCase().match(/[a-z]+/g) ?? []) {
      let h = 0;
      for (const ch of word) h = (h * 31 + ch.charCodeAt(0)) % 16;
      v[h]! += 1;
    }
    return v;
  }

  beforeAll(async () => {
    provider = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const parsed = JSON.parse(body) as { model: string; input: string[] };
        requests.push({ ...parsed, authorization: req.headers.authorization });
        if (req.url !== '/v1/embeddings' || parsed.input.some((t) => t.includes('provider-down'))) {
          res.writeHead(500).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            object: 'list',
            model: parsed.model,
            data: parsed.input.map((t, index) => ({ object: 'embedding', index, embedding: embedding(t) })),
          }),
        );
      });
    });
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    running = await startSubgraph(memory, {
      ...process.env,
      MEMORY_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: schemaPrefix,
      EMBEDDINGS_URL: `http://127.0.0.1:${(provider.address() as AddressInfo).port}/v1`,
      EMBEDDINGS_MODEL: 'test-embedder',
      EMBEDDINGS_API_KEY: 'sk-test',
      ...TEST_SECURITY_ENV,
    });
    admin = { url: running.url, headers: await identityHeaders('memory') };
  });
  afterAll(async () => {
    await running?.stop();
    await new Promise<void>((resolve) => provider?.close(() => resolve()));
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${schemaPrefix}memory`);
  });

  it('embeds texts in one batch, records the model, and searches by meaning from words alone', async () => {
    const before = requests.length;
    const stored = await gql<{ rememberBatch: { id: string; dimension: number; embeddingModel: string; vector: number[] }[] }>(
      admin,
      `mutation($inputs: [RememberInput!]!) { rememberBatch(inputs: $inputs) { id dimension embeddingModel vector } }`,
      {
        inputs: [
          { namespace: 'shared/emb', text: 'cats purr softly' },
          { namespace: 'shared/emb', text: 'rockets reach orbit' },
          { namespace: 'shared/emb', text: 'own vector', vector: new Array(16).fill(0.5) },
        ],
      },
    );
    expect(stored.errors).toBeUndefined();
    const [cats, , own] = stored.data!.rememberBatch;
    expect(cats).toMatchObject({ dimension: 16, embeddingModel: 'test-embedder' });
    expect(own).toMatchObject({ dimension: 16, embeddingModel: null });
    // One request for the two texts without a vector, with the key and model configured.
    expect(requests.slice(before)).toEqual([{ model: 'test-embedder', input: ['cats purr softly', 'rockets reach orbit'], authorization: 'Bearer sk-test' }]);

    const hits = await gql<{ searchMemories: { mode: string; vectorRank: number | null; memory: { id: string } }[] }>(
      admin,
      `{ searchMemories(input: { text: "softly purr" }) { mode vectorRank memory { id } } }`,
    );
    expect(hits.data!.searchMemories[0]).toMatchObject({ mode: 'HYBRID', vectorRank: 1, memory: { id: cats!.id } });

    // New text re-embeds: the old vector would describe the old text.
    const updated = await gql<{ updateMemory: { vector: number[]; embeddingModel: string } }>(
      admin,
      `mutation($id: ID!) { updateMemory(id: $id, input: { text: "dogs bark loudly" }) { vector embeddingModel } }`,
      { id: cats!.id },
    );
    expect(updated.data!.updateMemory.vector).toEqual(embedding('dogs bark loudly'));
  });

  it('writes nothing when the provider fails, and says so', async () => {
    const res = await gql(admin, REMEMBER, { input: { namespace: 'shared/emb-down', text: 'provider-down please' } });
    expect(codeOf(res)).toBe('EMBEDDINGS_UNAVAILABLE');
    const listed = await gql<{ memories: { totalCount: number } }>(admin, `{ memories(filter: { namespacePrefix: "shared/emb-down" }) { totalCount } }`);
    expect(listed.data!.memories.totalCount).toBe(0);
  });
});
