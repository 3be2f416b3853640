// A client's mistake is a 4xx in the API's own format on every transport, never a 500, a bare
// status line or an error-level log line: an operationName naming no operation, invalid variables
// (whether or not the caller sent credentials), and requests Node's HTTP parser refuses (a URL or
// headers over its limit, bytes that are not HTTP). Real processes; raw sockets where fetch would
// refuse to send the request.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal, subscribe, wsClient } from '../subscriptions/support.ts';
import { gql, gqlOk, manageProcesses, startPlatform, withDefaultAuth, type Platform, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let base: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-bad-requests-'));
  platform = await startPlatform({ dataDir });
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** pino levels: 50 error, 60 fatal. */
const errorLines = (service: ServiceProcess) => service.jsonLogs().filter((line) => typeof line.level === 'number' && line.level >= 50);

interface Answer {
  status: number;
  contentType: string;
  body: { errors?: { message: string; extensions?: Record<string, unknown> }[] } & Record<string, unknown>;
  text: string;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await withDefaultAuth(headers)) },
    body: JSON.stringify(body),
  });
  return answer(res);
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: JSON.parse(text) as Answer['body'], text };
}

const codes = (a: { errors?: { extensions?: Record<string, unknown> }[] }) => a.errors?.map((e) => e.extensions?.code);

describe('an operationName that names no operation', () => {
  const unknownName = { query: 'query A { __typename }', operationName: 'B' };

  it('is 400 OPERATION_RESOLUTION_FAILURE over HTTP POST, every time (fast path included), with no error logged', async () => {
    const before = errorLines(platform.gateway).length;
    // The document is known to the prepared-operations cache under its own name once A ran.
    await gqlOk(platform.url, 'query A { __typename }');
    for (const headers of [{}, { authorization: '' }] as Record<string, string>[]) {
      for (let i = 0; i < 3; i++) {
        const res = await post('/graphql', unknownName, headers);
        expect(res.status).toBe(400);
        expect(codes(res.body)).toEqual(['OPERATION_RESOLUTION_FAILURE']);
        expect(res.body.errors?.[0]?.message).toBe('Unknown operation named "B".');
      }
    }
    const several = await post('/graphql', { query: 'query A { __typename } query C { __typename }' });
    expect(several.status).toBe(400);
    expect(codes(several.body)).toEqual(['OPERATION_RESOLUTION_FAILURE']);
    expect(errorLines(platform.gateway).slice(before)).toEqual([]);
  });

  it('is 400 OPERATION_RESOLUTION_FAILURE over HTTP GET', async () => {
    const res = await fetch(`${platform.url}?query=${encodeURIComponent('query A { __typename }')}&operationName=B`, {
      headers: await withDefaultAuth({ accept: 'application/json', 'apollo-require-preflight': 'true' }),
    });
    const got = await answer(res);
    expect(got.status).toBe(400);
    expect(codes(got.body)).toEqual(['OPERATION_RESOLUTION_FAILURE']);
  });

  it('is the same error over graphql-ws and SSE', async () => {
    const client = wsClient(platform.url);
    try {
      const errors = await refusal(subscribe(client, unknownName));
      expect(errors.map((e) => e.extensions?.code)).toEqual(['OPERATION_RESOLUTION_FAILURE']);
    } finally {
      await client.dispose();
    }
    const sse = await post('/graphql/stream', unknownName, { accept: 'text/event-stream' });
    expect(sse.status).toBe(400);
    expect(codes(sse.body)).toEqual(['OPERATION_RESOLUTION_FAILURE']);
  });
});

describe('invalid variables', () => {
  const query = 'query Lookup($id: ID!) { agent(id: $id) { name } }';

  it('are 400 BAD_USER_INPUT with or without credentials, before access rules, on the fast path too', async () => {
    // Executed once with valid variables: later requests of the same text take the fast path.
    await gql(platform.url, query, { id: 'agt_unknown' });
    for (const headers of [{}, { authorization: '' }] as Record<string, string>[]) {
      for (const variables of [{ id: { not: 'an id' } }, {}, { id: null }]) {
        const res = await gql(platform.url, query, variables, headers);
        expect({ headers, variables, status: res.status, codes: codes(res) }).toEqual({ headers, variables, status: 400, codes: ['BAD_USER_INPUT'] });
        expect(res.data).toBeUndefined();
      }
    }
  });

  it('are BAD_USER_INPUT over SSE for an anonymous caller too (graphql-ws needs credentials to connect)', async () => {
    const sse = await post('/graphql/stream', { query, variables: { id: [1] } }, { accept: 'text/event-stream', authorization: '' });
    expect(sse.status).toBe(400);
    expect(codes(sse.body)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('a persisted-query hash that does not match its query (found by tests/e2e/generative.test.ts)', () => {
  it('is 400 BAD_REQUEST, not a masked internal error with an error log line', async () => {
    const before = errorLines(platform.gateway).length;
    const res = await post('/graphql', { query: '{ __typename }', extensions: { persistedQuery: { version: 1, sha256Hash: 'abc' } } });
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ message: 'provided sha does not match query', extensions: { code: 'BAD_REQUEST' } }]);
    expect(errorLines(platform.gateway).slice(before)).toEqual([]);
  });
});

/** Sends raw bytes and reads until the server closes the connection. */
function rawRequest(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.write(data);
  });
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parseRaw(text: string): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  expect(end, `a complete HTTP answer: ${JSON.stringify(text.slice(0, 300))}`).toBeGreaterThan(0);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}

describe('requests Node refuses to parse', () => {
  const long = 'a'.repeat(20_000);
  const cases = [
    {
      name: 'a URL over the limit',
      path: '/graphql',
      request: (p: string) => `GET ${p}?q=${long} HTTP/1.1\r\nHost: x\r\n\r\n`,
      status: 414,
      code: 'URI_TOO_LONG',
    },
    {
      name: 'headers over the limit',
      path: '/graphql',
      request: (p: string) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Big: ${long}\r\n\r\n`,
      status: 431,
      code: 'REQUEST_HEADER_FIELDS_TOO_LARGE',
    },
    { name: 'malformed HTTP', path: '/graphql', request: (p: string) => `GET ${p} HTTP/1.1\r\nHost x\r\n\r\n`, status: 400, code: 'BAD_REQUEST' },
  ];

  for (const c of cases) {
    it(`${c.name}: GraphQL error JSON on /graphql, problem+json on /v1/..., Connection: close, no stack`, async () => {
      const graphql = parseRaw(await rawRequest(platform.gateway.port, c.request('/graphql')));
      expect(graphql.status).toBe(c.status);
      expect(graphql.headers.connection).toBe('close');
      expect(graphql.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(graphql.body)).toEqual({ errors: [{ message: expect.any(String), extensions: { code: c.code } }] });

      const restAnswer = parseRaw(await rawRequest(platform.gateway.port, c.request('/v1/agents')));
      expect(restAnswer.status).toBe(c.status);
      expect(restAnswer.headers.connection).toBe('close');
      expect(restAnswer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(restAnswer.body)).toMatchObject({
        status: c.status,
        code: c.code,
        instance: '/v1/agents',
        title: expect.any(String),
        detail: expect.any(String),
      });

      for (const body of [graphql.body, restAnswer.body]) expect(body).not.toMatch(/\bat .+:\d+:\d+|Error:|HPE_/);
    });
  }

  it('bytes that are not HTTP at all get a GraphQL-format 400; the subgraphs answer the same way', async () => {
    const garbage = parseRaw(await rawRequest(platform.gateway.port, 'GARBAGE\r\n\r\n'));
    expect(garbage.status).toBe(400);
    expect(JSON.parse(garbage.body)).toEqual({ errors: [{ message: 'Malformed HTTP request', extensions: { code: 'BAD_REQUEST' } }] });
    const subgraph = parseRaw(await rawRequest(platform.agents.port, `GET /graphql HTTP/1.1\r\nHost: x\r\nX-Big: ${long}\r\n\r\n`));
    expect(subgraph.status).toBe(431);
    expect(JSON.parse(subgraph.body)).toEqual({ errors: [{ message: expect.any(String), extensions: { code: 'REQUEST_HEADER_FIELDS_TOO_LARGE' } }] });
  });

  it('the gateway keeps serving and logs no error for any of them', async () => {
    expect(errorLines(platform.gateway)).toEqual([]);
    await gqlOk(platform.url, '{ __typename }');
  });
});
