// Nobody takes the gateway down: operation limits (depth, aliases, cost, tokens), body size,
// batching, rate limits per caller with 429 and Retry-After on every transport, and error masking
// of a real internal error. Real processes; small budgets so the limits are reached quickly.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rest } from '../rest/client.ts';
import { bearer } from '../support/auth.ts';
import { gql, gqlOk, manageProcesses, startPlatform, type Platform, type ServiceProcess } from '../support/processes.ts';
import { subscribe, wsClient } from '../subscriptions/support.ts';

manageProcesses();

const WINDOW_SECONDS = 2;
const HTTP_BUDGET = 5;
const SUBSCRIPTION_BUDGET = 2;

let dataDir: string;
let platform: Platform;
let base: string;
// Budgets are per caller: every test acts as its own user, so they do not eat each other's.
const run = randomBytes(4).toString('hex');
const caller = (name: string) => bearer({ subject: `${name}-${run}` });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-limits-'));
  platform = await startPlatform({
    dataDir,
    // SQLite, whatever CI configures: the masking test corrupts a row in the subgraph's file.
    env: { DATABASE_URL: '' },
    gatewayEnv: {
      RATE_LIMIT_HTTP_REQUESTS: String(HTTP_BUDGET),
      RATE_LIMIT_HTTP_WINDOW_SECONDS: String(WINDOW_SECONDS),
      RATE_LIMIT_SUBSCRIPTIONS: String(SUBSCRIPTION_BUDGET),
      RATE_LIMIT_SUBSCRIPTION_WINDOW_SECONDS: String(WINDOW_SECONDS),
      // With REDIS_URL set the budgets live in Redis: keep this run's apart.
      RATE_LIMIT_PREFIX: `e2e-limits-${run}`,
    },
  });
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const requestLines = (p: ServiceProcess) => p.jsonLogs().filter((l) => l.msg === 'request' && l.path === '/graphql').length;

/** task → agent → tasks → nodes → agent ...: n levels of cross-subgraph nesting. */
function deepQuery(levels: number): string {
  let inner = 'id';
  for (let i = 0; i < levels; i++) inner = `agent { tasks { nodes { ${inner} } } }`;
  return `query($id: ID!) { task(id: $id) { ${inner} } }`;
}

describe('operation limits', () => {
  it.each([
    ['a depth bomb', () => deepQuery(20), 'maxDepth'],
    ['an alias bomb', () => `{ ${Array.from({ length: 100 }, (_, i) => `a${i}: agents { totalCount }`).join(' ')} }`, 'maxAliases'],
    [
      'a cost bomb',
      () =>
        `{ ${Array.from({ length: 10 }, (_, i) => `a${i}: tasks(first: 100) { nodes { agent { tasks(first: 100) { nodes { title description state priority attempts input result } } } } }`).join(' ')} }`,
      'maxCost',
    ],
  ])('refuses %s with 400 before any subgraph is asked', async (_what, query, limit) => {
    const before = requestLines(platform.agents) + requestLines(platform.orchestration);
    const res = await gql(platform.url, query(), { id: '00000000-0000-4000-8000-000000000000' }, await caller(`bomb-${limit}`));
    expect(res.status).toBe(400);
    expect(res.errors).toEqual(
      expect.arrayContaining([expect.objectContaining({ extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED', limit }) })]),
    );
    expect(requestLines(platform.agents) + requestLines(platform.orchestration)).toBe(before);
  });

  it('stops parsing a token bomb at the token limit', async () => {
    const res = await gql(platform.url, `{ agents { ${'totalCount '.repeat(5000)} } }`, undefined, await caller('tokens'));
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(res.errors?.[0]?.message).toMatch(/tokens/);
  });

  it('applies the same limits to subscriptions', async () => {
    const client = wsClient(platform.url, { connectionParams: await caller('sub-bomb') });
    try {
      const sub = subscribe(client, {
        query: `subscription { taskUpdated { ${deepQuery(20)
          .replace(/^query\(\$id: ID!\) \{ task\(id: \$id\) \{ /, 'task { ')
          .replace(/ \} \}$/, ' }')} } }`,
      });
      const ending = await sub.ended;
      expect(ending.kind).toBe('error');
      expect(JSON.stringify(ending.kind === 'error' ? ending.error : null)).toMatch(/maxDepth|maxCost/);
    } finally {
      await client.dispose();
    }
  });

  it('refuses an oversized body with 413, over GraphQL and REST, and batches with 400', async () => {
    const headers = { 'content-type': 'application/json', ...(await caller('body')) };
    const huge = JSON.stringify({ query: `{ agents { totalCount } }`, variables: { pad: 'x'.repeat(2 * 1024 * 1024) } });
    const graphql = await fetch(platform.url, { method: 'POST', headers, body: huge });
    expect(graphql.status).toBe(413);
    expect(await graphql.json()).toEqual({ errors: [expect.objectContaining({ extensions: { code: 'PAYLOAD_TOO_LARGE' } })] });
    const restResponse = await rest(base, 'POST', '/v1/agents', {
      headers: await caller('body-rest'),
      rawBody: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(restResponse.status).toBe(413);

    const batch = await fetch(platform.url, {
      method: 'POST',
      headers,
      body: JSON.stringify([{ query: '{ agents { totalCount } }' }, { query: '{ agents { totalCount } }' }]),
    });
    expect(batch.status).toBe(400);
  });
});

describe('rate limits per caller', () => {
  it('answers 429 with Retry-After and RATE_LIMITED once the budget is spent, and serves again after the reset', async () => {
    const me = await caller('http');
    for (let i = 0; i < HTTP_BUDGET; i++) {
      const ok = await gql(platform.url, '{ agents { totalCount } }', undefined, me);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('ratelimit-remaining')).toBe(String(HTTP_BUDGET - 1 - i));
    }
    const refused = await gql(platform.url, '{ agents { totalCount } }', undefined, me);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
    expect(refused.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'RATE_LIMITED', retryAfterSeconds: retryAfter }) })]);
    // REST counts against the same budget.
    const viaRest = await rest(base, 'GET', '/v1/agents', { headers: me });
    expect(viaRest.status).toBe(429);
    expect(viaRest.body).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    expect(Number(viaRest.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Someone else is not affected.
    expect((await gql(platform.url, '{ agents { totalCount } }', undefined, await caller('bystander'))).status).toBe(200);

    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 200));
    expect(await gqlOk(platform.url, '{ agents { totalCount } }', undefined, me)).toEqual({ agents: { totalCount: 0 } });
  });

  it('limits subscription starts over graphql-ws', async () => {
    const client = wsClient(platform.url, { connectionParams: await caller('subs') });
    try {
      const subs = Array.from({ length: SUBSCRIPTION_BUDGET }, () => subscribe(client, { query: 'subscription { agentHeartbeat { occurredAt } }' }));
      const refused = subscribe(client, { query: 'subscription { agentHeartbeat { occurredAt } }' });
      const ending = await refused.ended;
      expect(ending.kind === 'error' ? ending.error : ending).toEqual([
        expect.objectContaining({ extensions: expect.objectContaining({ code: 'RATE_LIMITED' }) }),
      ]);
      for (const s of subs) s.unsubscribe();
    } finally {
      await client.dispose();
    }
  });
});

describe('error masking', () => {
  it('turns a thrown internal error into INTERNAL_SERVER_ERROR with a correlation id that is in the log, never a stack', async () => {
    const admin = await caller('masking');
    const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(
      platform.url,
      'mutation { submitTask(input: { title: "to corrupt", input: { ok: true } }) { id } }',
      undefined,
      admin,
    );
    // A row the code cannot read: JSON.parse throws deep in the subgraph.
    const db = new BetterSqlite3(join(dataDir, 'orchestration.sqlite'));
    try {
      expect(db.prepare('update tasks set input = ? where id = ?').run('{not json', submitTask.id).changes).toBe(1);
    } finally {
      db.close();
    }
    const res = await fetch(platform.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await caller('masking-read')) },
      body: JSON.stringify({ query: 'query($id: ID!) { task(id: $id) { title input } }', variables: { id: submitTask.id } }),
    });
    const text = await res.text();
    expect(text).not.toMatch(/stacktrace|SyntaxError|JSON\.parse|\.ts:\d+|not json/);
    const body = JSON.parse(text) as { errors?: { message: string; extensions?: Record<string, unknown> }[] };
    const error = body.errors?.[0];
    expect(error?.extensions).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', correlationId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const correlationId = String(error?.extensions?.correlationId);
    expect(error?.message).toBe(`Internal server error (correlation id ${correlationId})`);
    // The operator finds the cause under that id.
    await expect
      .poll(() => platform.orchestration.jsonLogs().find((l) => l.correlationId === correlationId))
      .toMatchObject({ level: 50, err: expect.objectContaining({ type: 'SyntaxError' }) });
  });
});
