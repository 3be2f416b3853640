// A NUL character (U+0000) in a string input is the caller's mistake on every backend: PostgreSQL
// cannot store it (text and jsonb) and failed with an internal error, SQLite stored it. The
// gateway refuses it before any subgraph runs: 400 BAD_USER_INPUT naming the argument or
// variable, nothing written, no error-level log line. Real processes, on SQLite and (when
// DATABASE_URL is set) PostgreSQL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, DATABASE_URL } from '../support/databases.ts';
import { gql, gqlOk, manageProcesses, startPlatform, withDefaultAuth, type Platform, type ServiceProcess } from '../support/processes.ts';
import { refusal, subscribe, wsClient } from '../subscriptions/support.ts';

manageProcesses();

/** pino levels: 50 error, 60 fatal. */
const errorLines = (service: ServiceProcess) => service.jsonLogs().filter((line) => typeof line.level === 'number' && line.level >= 50);

const REGISTER = 'mutation Register($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }';
const SUBMIT = 'mutation Submit($input: SubmitTaskInput!) { submitTask(input: $input) { id } }';
const COUNTS = '{ agents(first: 1) { totalCount } tasks(first: 1) { totalCount } }';

// The GraphQL literals spell the NUL as the escape \u0000, as a client would.
const cases: { name: string; query: string; variables?: Record<string, unknown>; names: Record<string, string> }[] = [
  { name: 'a string argument', query: 'mutation { registerAgent(input: { name: "bad\\u0000name" }) { id } }', names: { argument: 'input.name' } },
  { name: 'a variable', query: REGISTER, variables: { input: { name: 'bad\u0000name' } }, names: { variable: '$input.name' } },
  {
    name: 'a JSON variable',
    query: SUBMIT,
    variables: { input: { title: 'ok', input: { notes: ['fine', 'bad\u0000'] } } },
    names: { variable: '$input.input.notes[1]' },
  },
  {
    name: 'a JSON literal',
    query: 'mutation { submitTask(input: { title: "ok", input: { note: "bad\\u0000" } }) { id } }',
    names: { argument: 'input.input.note' },
  },
];

describe.each(backends)('a NUL character in a string input, through the gateway: $backend', ({ backend, skip }) => {
  let dataDir: string;
  let platform: Platform;

  beforeAll(async () => {
    if (skip) return;
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-nul-'));
    platform = await startPlatform({ dataDir, env: { DATABASE_URL: backend === 'postgres' ? DATABASE_URL : '' } });
  });

  afterAll(async () => {
    await platform?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it.skipIf(skip)(`is 400 BAD_USER_INPUT naming it, nothing is written, nothing logged as an error${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const before = await gqlOk(platform.url, COUNTS);
    const services = [platform.gateway, platform.agents, platform.orchestration, platform.governance];
    const logged = services.map((s) => errorLines(s).length);
    for (const c of cases) {
      const res = await gql(platform.url, c.query, c.variables);
      expect({ case: c.name, status: res.status, data: res.data }).toEqual({ case: c.name, status: 400, data: undefined });
      expect(res.errors).toHaveLength(1);
      expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', ...c.names });
      expect(res.errors?.[0]?.message).toContain('NUL character');
    }
    // The REST facade runs the same executor: a problem+json 400.
    const rest = await fetch(platform.url.replace(/\/graphql$/, '/v1/agents'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await withDefaultAuth()) },
      body: JSON.stringify({ name: 'bad\u0000name' }),
    });
    expect(rest.status).toBe(400);
    expect(rest.headers.get('content-type')).toContain('application/problem+json');
    expect(await rest.json()).toMatchObject({ status: 400, code: 'BAD_USER_INPUT' });
    expect(await gqlOk(platform.url, COUNTS)).toEqual(before);
    expect(services.map((s, i) => errorLines(s).slice(logged[i]))).toEqual(services.map(() => []));
    // The same inputs without the NUL go through: the refusal is about that character only.
    await gqlOk(platform.url, REGISTER, { input: { name: 'good name' } });
    await gqlOk(platform.url, SUBMIT, { input: { title: 'ok', input: { notes: ['fine', 'good'] } } });
  });

  it.skipIf(skip)(`refuses it in a subscription's arguments too, over graphql-ws and SSE${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const subscription = { query: 'subscription($agent: ID) { agentStatusChanged(agentId: $agent) { eventId } }', variables: { agent: 'a\u0000b' } };
    const client = wsClient(platform.url);
    try {
      const errors = await refusal(subscribe(client, subscription));
      expect(errors.map((e) => e.extensions)).toEqual([expect.objectContaining({ code: 'BAD_USER_INPUT', variable: '$agent' })]);
    } finally {
      await client.dispose();
    }
    const sse = await fetch(platform.url.replace(/\/graphql$/, '/graphql/stream'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(await withDefaultAuth()) },
      body: JSON.stringify(subscription),
    });
    expect(sse.status).toBe(400);
    expect(((await sse.json()) as { errors: { extensions?: Record<string, unknown> }[] }).errors[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      variable: '$agent',
    });
  });
});
