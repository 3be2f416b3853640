// OpenTelemetry across the platform: the gateway and the subgraphs are real processes exporting
// OTLP/HTTP (JSON) to a receiver this test runs. A client's traceparent is continued by the
// gateway, into every subgraph it calls, and across the event bus into the subscription delivery
// a mutation's event causes: one trace.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.ts';
import { gql, gqlOk, manageProcesses, startPlatform, withDefaultAuth, type Platform } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient } from '../subscriptions/support.ts';

manageProcesses();

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

let dataDir: string;
let receiver: OtlpReceiver;
let platform: Platform;
let client: Client;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-tracing-'));
  receiver = await startOtlpReceiver();
  platform = await startPlatform({ dataDir, env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } });
  client = wsClient(platform.url);
});

afterAll(async () => {
  await client?.dispose();
  await platform?.stop();
  await receiver?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A client-side trace: its id and the traceparent of the client's own (unexported) span. */
function clientTrace(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);

/** The chain of parents of a span within its trace, nearest first. */
function ancestors(span: ReceivedSpan, trace: readonly ReceivedSpan[]): ReceivedSpan[] {
  const chain: ReceivedSpan[] = [];
  for (let parent = trace.find((s) => s.spanId === span.parentSpanId); parent; parent = trace.find((s) => s.spanId === parent?.parentSpanId)) {
    chain.push(parent);
    if (chain.length > 100) break;
  }
  return chain;
}

async function worker(name: string): Promise<{ id: string; tag: string }> {
  const tag = `tag-${randomUUID().slice(0, 8)}`;
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    'mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }',
    { input: { name, skills: [{ id: 'work', name: 'Work', tags: [tag] }] } },
  );
  await gqlOk(platform.url, 'mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: registerAgent.id });
  return { id: registerAgent.id, tag };
}

describe('tracing (OTLP export on)', () => {
  it('exports one trace spanning the gateway and both subgraphs of a join query, continuing the client trace', async () => {
    const { tag } = await worker('Traced joiner');
    await gqlOk(platform.url, 'mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }', {
      input: { title: 'traced', requiredSkillTags: [tag] },
    });
    const { traceId, spanId, traceparent } = clientTrace();
    const result = await gql<{ agents: { nodes: { name: string; tasks: { totalCount: number } }[] } }>(
      platform.url,
      'query Joined { agents(first: 20) { nodes { name tasks(first: 1) { totalCount } } } }',
      undefined,
      { traceparent },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data?.agents.nodes.some((a) => a.name === 'Traced joiner')).toBe(true);
    expect(result.headers.get('x-trace-id')).toBe(traceId);

    const trace = await waitFor('spans of the gateway and both subgraphs', () => {
      const spans = spansOf(traceId);
      const services = new Set(spans.filter((s) => s.kind === SERVER).map((s) => s.service));
      return services.has('gateway') && services.has('agents') && services.has('orchestration') && spans;
    });
    // The gateway's request span continues the client's span.
    const incoming = trace.find((s) => s.service === 'gateway' && s.kind === SERVER);
    expect(incoming?.parentSpanId).toBe(spanId);
    // Each subgraph's request span is the child of the gateway's fetch span for that subgraph.
    for (const subgraph of ['agents', 'orchestration']) {
      const served = trace.find((s) => s.service === subgraph && s.kind === SERVER);
      const fetch = trace.find((s) => s.spanId === served?.parentSpanId);
      expect(fetch).toMatchObject({ service: 'gateway', kind: CLIENT, name: `subgraph ${subgraph}` });
      expect(ancestors(served as ReceivedSpan, trace)).toContainEqual(incoming);
    }
    // Parse/validate/execute in the gateway, SQL statements in the subgraphs.
    const names = trace.map((s) => `${s.service} ${s.name}`);
    expect(names).toContain('gateway graphql.parse');
    expect(names).toContain('gateway graphql.validate');
    expect(names.some((n) => n.startsWith('gateway graphql.execute query Joined'))).toBe(true);
    expect(
      trace.some(
        (s) =>
          s.service === 'agents' &&
          s.attributes['db.system.name'] === (process.env.DATABASE_URL ? 'postgresql' : 'sqlite') &&
          String(s.attributes['db.query.text']).startsWith('select'),
      ),
    ).toBe(true);
    expect(receiver.malformed).toBe(0);
  });

  it('puts a mutation, its event and the subscription delivery it caused in one trace', async () => {
    const w = await worker('Traced claimer');
    const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(
      platform.url,
      'mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }',
      {
        input: { title: 'traced event', requiredSkillTags: [w.tag] },
      },
    );
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const sub = subscribe(client, {
      query: 'subscription($t: ID) { taskUpdated(taskId: $t) { to task { id agent { name } } } }',
      variables: { t: submitTask.id },
    });
    await subgraphSubscribed(platform.orchestration, before);

    const { traceId, traceparent } = clientTrace();
    await gqlOk(
      platform.url,
      'mutation Claim($a: ID!, $tags: [String!]!) { claimTask(agentId: $a, skillTags: $tags) { id } }',
      { a: w.id, tags: [w.tag] },
      {
        traceparent,
      },
    );
    const event = await sub.next(20_000);
    expect(event.data?.taskUpdated).toMatchObject({ to: 'ASSIGNED', task: { id: submitTask.id, agent: { name: 'Traced claimer' } } });
    sub.unsubscribe();

    const trace = await waitFor(
      'the delivery spans in the mutation trace',
      () => {
        const spans = spansOf(traceId);
        const delivered = spans.find((s) => s.service === 'gateway' && s.kind === CONSUMER);
        const entityFetch = delivered && spans.find((s) => s.service === 'agents' && s.kind === SERVER && ancestors(s, spans).includes(delivered));
        // Each process exports on its own schedule: the subgraph's spans may come later.
        const subgraphSide =
          spans.some((s) => s.service === 'orchestration' && s.kind === PRODUCER) && spans.some((s) => s.service === 'orchestration' && s.kind === CONSUMER);
        return entityFetch && subgraphSide ? spans : undefined;
      },
      20_000,
    );
    const mutation = trace.find((s) => s.service === 'gateway' && s.kind === SERVER);
    const published = trace.find((s) => s.service === 'orchestration' && s.kind === PRODUCER);
    const consumed = trace.find((s) => s.service === 'orchestration' && s.kind === CONSUMER);
    const delivered = trace.find((s) => s.service === 'gateway' && s.kind === CONSUMER);
    expect(mutation?.name).toBe('POST /graphql');
    expect(published?.name).toMatch(/^publish /);
    // The subgraph's delivery continues the mutation's trace; the gateway's continues the subgraph's.
    expect(ancestors(consumed as ReceivedSpan, trace)).toContainEqual(mutation);
    expect(delivered?.parentSpanId).toBe(consumed?.spanId);
  });

  it('traces a graphql-ws subscription from the upgrade request to the subgraph subscribe it opened', async () => {
    const { traceId, traceparent } = clientTrace();
    // The browser's WebSocket sends no custom headers, but a proxy or a server-side client may.
    class TracedSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols, { headers: { traceparent } });
      }
    }
    const traced = wsClient(platform.url, { webSocketImpl: TracedSocket });
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    // A task id no one watches yet: a stream of its own, so an upstream subscribe of its own.
    const sub = subscribe(traced, { query: 'subscription Watched($t: ID) { taskUpdated(taskId: $t) { to } }', variables: { t: randomUUID() } });
    await subgraphSubscribed(platform.orchestration, before);
    sub.unsubscribe();
    await traced.dispose();
    const trace = await waitFor(
      'the subscribe spans in the client trace',
      () => {
        const spans = spansOf(traceId);
        return spans.some((s) => s.kind === CLIENT && s.name === 'subscribe orchestration') ? spans : undefined;
      },
      20_000,
    );
    const operation = trace.find((s) => s.service === 'gateway' && s.kind === SERVER);
    const upstream = trace.find((s) => s.kind === CLIENT && s.name === 'subscribe orchestration');
    expect(operation?.name).toBe('graphql-ws Watched');
    expect(upstream).toMatchObject({ service: 'gateway', attributes: { 'graphql.subgraph.name': 'orchestration' } });
    expect(ancestors(upstream as ReceivedSpan, trace)).toContainEqual(operation);
  });

  it('names the trace in error responses, GraphQL and REST', async () => {
    const graphql = clientTrace();
    const broken = await gql(platform.url, '{ agents(first: ', undefined, { traceparent: graphql.traceparent });
    expect(broken.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_PARSE_FAILED', traceId: graphql.traceId });

    const rest = clientTrace();
    const res = await fetch(platform.url.replace(/\/graphql$/, '/v1/tasks'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: rest.traceparent, 'x-request-id': 'traced-problem', ...(await withDefaultAuth()) },
      body: '{}',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ requestId: 'traced-problem', traceId: rest.traceId });
  });

  it('logs trace_id and span_id on the lines written while serving a traced request', async () => {
    const { traceId, traceparent } = clientTrace();
    await gql(platform.url, '{ __typename }', undefined, { traceparent, 'x-request-id': 'traced-log' });
    // The access line is written when the response finished, still inside the request's span.
    const line = await waitFor('a log line with the trace id', () => platform.gateway.jsonLogs().find((l) => l.trace_id === traceId));
    expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
  });
});
