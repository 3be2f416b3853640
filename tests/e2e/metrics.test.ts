// Prometheus metrics end to end: the platform's real processes (gateway and the three subgraphs)
// take some traffic, /metrics is scraped, and the series must have moved as the traffic says;
// every metric name the Grafana dashboard and the alert rules use must be one the services export.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startGateway, type RunningGateway } from '../../gateway/server.ts';
import { bearer, TEST_SECURITY_ENV } from '../support/auth.ts';
import { familyOf, metricNamesIn, parseExposition, seriesOf, total, type Exposition } from '../support/metrics.ts';
import { subscribe, waitFor, wsClient } from '../subscriptions/support.ts';
import {
  getFreePort,
  gql,
  gqlOk,
  manageProcesses,
  REPO_ROOT,
  startPlatform,
  subgraphsOf,
  TEST_RATE_LIMITS,
  withDefaultAuth,
  type Platform,
} from '../support/processes.ts';

manageProcesses();

let dir: string;
let platform: Platform;
/** In process, in front of an agents subgraph that is not there; its metrics on a port of their own. */
let broken: RunningGateway;
let brokenMetricsPort: number;
/** In process, with METRICS_TOKEN. */
let guarded: RunningGateway;
const METRICS_TOKEN = 'metrics-test-token-0123456789';

function metricsUrl(port: number): string {
  return `http://127.0.0.1:${port}/metrics`;
}

async function scrape(port: number, headers: Record<string, string> = {}): Promise<Exposition> {
  const res = await fetch(metricsUrl(port), { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics on ${port} answered ${res.status}: ${text}`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return parseExposition(text);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-metrics-'));
  platform = await startPlatform({ dataDir: dir });
  const subgraphs = subgraphsOf(platform);
  brokenMetricsPort = await getFreePort();
  broken = await startGateway({
    ...TEST_SECURITY_ENV,
    ...TEST_RATE_LIMITS,
    LOG_LEVEL: 'silent',
    GATEWAY_PORT: String(await getFreePort()),
    METRICS_PORT: String(brokenMetricsPort),
    // Small enough for the rate-limit test's caller to spend (per caller: other tests use another).
    RATE_LIMIT_HTTP_REQUESTS: '3',
    SUBGRAPH_AGENTS_URL: `http://127.0.0.1:${await getFreePort()}/graphql`,
    SUBGRAPH_ORCHESTRATION_URL: subgraphs.orchestration,
    SUBGRAPH_GOVERNANCE_URL: subgraphs.governance,
    SUBGRAPH_TIMEOUT_MS: '5000',
  });
  guarded = await startGateway({
    ...TEST_SECURITY_ENV,
    ...TEST_RATE_LIMITS,
    LOG_LEVEL: 'silent',
    GATEWAY_PORT: String(await getFreePort()),
    METRICS_TOKEN,
    SUBGRAPH_AGENTS_URL: subgraphs.agents,
    SUBGRAPH_ORCHESTRATION_URL: subgraphs.orchestration,
    SUBGRAPH_GOVERNANCE_URL: subgraphs.governance,
  });
}, 120_000);

afterAll(async () => {
  await broken?.stop();
  await guarded?.stop();
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const REGISTER = 'mutation RegisterAgent($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }';
const GET_AGENT = 'query GetAgent($id: ID!) { agent(id: $id) { id name } }';

describe('metrics of the gateway', () => {
  it('counts a mutation and a query under their operation names and types', async () => {
    const before = await scrape(platform.gateway.port);
    const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(platform.url, REGISTER, { input: { name: 'Metered' } });
    await gqlOk(platform.url, GET_AGENT, { id: registerAgent.id });
    await gqlOk(platform.url, GET_AGENT, { id: registerAgent.id });
    const after = await scrape(platform.gateway.port);
    const count = (e: Exposition, labels: Record<string, string>) => total(e, 'graphql_operation_duration_seconds_count', labels);
    expect(
      count(after, { operation_type: 'mutation', operation_name: 'RegisterAgent', outcome: 'ok' }) -
        count(before, { operation_type: 'mutation', operation_name: 'RegisterAgent', outcome: 'ok' }),
    ).toBe(1);
    expect(
      count(after, { operation_type: 'query', operation_name: 'GetAgent', outcome: 'ok' }) -
        count(before, { operation_type: 'query', operation_name: 'GetAgent', outcome: 'ok' }),
    ).toBe(2);
    // The subgraph fetches behind them.
    expect(total(after, 'gateway_subgraph_fetch_duration_seconds_count', { subgraph: 'agents', outcome: 'ok' })).toBeGreaterThan(
      total(before, 'gateway_subgraph_fetch_duration_seconds_count', { subgraph: 'agents', outcome: 'ok' }),
    );
    // Every series carries the service's name; no series carries a tenant unless asked to.
    expect(after.samples.every((s) => s.labels.service === 'gateway')).toBe(true);
    expect(after.samples.some((s) => 'tenant' in s.labels)).toBe(false);
  });

  it('labels an operation name no known document has as "other", and an unnamed one as "anonymous"', async () => {
    const name = `MadeUp${Date.now()}`;
    await gqlOk(platform.url, `query ${name} { agents(first: 1) { edges { node { id } } } }`);
    await gqlOk(platform.url, '{ agents(first: 1) { edges { node { id } } } }');
    const after = await scrape(platform.gateway.port);
    const names = seriesOf(after, 'graphql_operation_duration_seconds_count').map((labels) => labels.operation_name);
    expect(names).not.toContain(name);
    expect(names).toContain('other');
    expect(names).toContain('anonymous');
  });

  it('labels REST requests by route template, not by path', async () => {
    const headers = { 'content-type': 'application/json', ...(await withDefaultAuth()) };
    const created = await fetch(`http://127.0.0.1:${platform.gateway.port}/v1/agents`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'Rest metered' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const got = await fetch(`http://127.0.0.1:${platform.gateway.port}/v1/agents/${id}`, { headers });
    expect(got.status).toBe(200);
    const after = await scrape(platform.gateway.port);
    expect(total(after, 'http_request_duration_seconds_count', { route: 'POST /v1/agents', status: '201' })).toBeGreaterThanOrEqual(1);
    expect(total(after, 'http_request_duration_seconds_count', { route: 'GET /v1/agents/{id}', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(seriesOf(after, 'http_request_duration_seconds_count').some((labels) => labels.route?.includes(id))).toBe(false);
  });

  it('counts refused credentials by reason', async () => {
    const before = total(await scrape(platform.gateway.port), 'gateway_auth_failures_total');
    const res = await gql(platform.url, '{ agents(first: 1) { edges { node { id } } } }', undefined, { authorization: 'Bearer not-a-jwt' });
    expect(res.status).toBe(401);
    const after = await scrape(platform.gateway.port);
    expect(total(after, 'gateway_auth_failures_total') - before).toBe(1);
  });

  it('counts a failed subgraph fetch with its code, and the operation error with it', async () => {
    const res = await gql(broken.url, GET_AGENT, { id: 'missing' });
    expect(res.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE');
    const after = await scrape(brokenMetricsPort);
    expect(total(after, 'gateway_subgraph_fetch_errors_total', { subgraph: 'agents', code: 'SUBGRAPH_UNAVAILABLE' })).toBe(1);
    expect(total(after, 'gateway_subgraph_fetch_duration_seconds_count', { subgraph: 'agents', outcome: 'error' })).toBe(1);
    expect(total(after, 'graphql_operation_errors_total', { operation_name: 'GetAgent', code: 'SUBGRAPH_UNAVAILABLE' })).toBe(1);
    expect(total(after, 'graphql_operation_duration_seconds_count', { operation_name: 'GetAgent', outcome: 'error' })).toBe(1);
    // A subgraph without a breaker reports it closed.
    expect(total(after, 'gateway_subgraph_breaker_state', { subgraph: 'agents' })).toBe(0);
  });

  it('counts rate-limit denials by budget', async () => {
    const caller = await bearer({ subject: 'metrics-rate-limited' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await gql(broken.url, '{ __typename }', undefined, caller)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(total(await scrape(brokenMetricsPort), 'gateway_rate_limit_denials_total', { budget: 'http' })).toBe(1);
  });

  it('counts open WebSocket connections and subscriptions, and the events streamed to them', async () => {
    const gauge = async (name: string, labels: Record<string, string>) => total(await scrape(platform.gateway.port), name, labels);
    const client = wsClient(platform.url);
    const subscription = subscribe(client, { query: 'subscription { agentStatusChanged { agent { id } } }' });
    try {
      await waitFor('the subscription counted', async () => (await gauge('gateway_subscriptions_active', { side: 'client' })) >= 1);
      expect(await gauge('gateway_connections_active', { transport: 'ws' })).toBeGreaterThanOrEqual(1);
      await waitFor('the agents stream open', async () => total(await scrape(platform.agents.port), 'event_streams_active') >= 1);
      const before = total(await scrape(platform.agents.port), 'events_streamed_total', { outcome: 'delivered' });
      await gqlOk(platform.url, REGISTER, { input: { name: 'Streamed' } });
      await subscription.next();
      expect(total(await scrape(platform.agents.port), 'events_streamed_total', { outcome: 'delivered' })).toBeGreaterThan(before);
    } finally {
      subscription.unsubscribe();
      await client.dispose();
    }
    await waitFor('the subscription uncounted', async () => (await gauge('gateway_subscriptions_active', { side: 'client' })) === 0);
  });

  it('serves /metrics only on METRICS_PORT when one is set', async () => {
    const res = await fetch(`http://127.0.0.1:${broken.port}/metrics`);
    expect(res.status).toBe(404);
  });

  it('with METRICS_TOKEN, answers only that token or the admin scope', async () => {
    const anonymous = await fetch(metricsUrl(guarded.port));
    expect(anonymous.status).toBe(401);
    const notAdmin = await fetch(metricsUrl(guarded.port), { headers: await bearer({ scopes: ['agents:read'] }) });
    expect(notAdmin.status).toBe(403);
    expect(((await notAdmin.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('FORBIDDEN');
    const wrongToken = await fetch(metricsUrl(guarded.port), { headers: { authorization: 'Bearer nope' } });
    expect(wrongToken.status).toBe(401);
    await scrape(guarded.port, { authorization: `Bearer ${METRICS_TOKEN}` });
    await scrape(guarded.port, await bearer({ scopes: ['admin'] }));
  });
});

describe('metrics of the subgraphs', () => {
  it('count operations by root field, and the domain gauges', async () => {
    await gqlOk(platform.url, REGISTER, { input: { name: 'Counted' } });
    await gqlOk(platform.url, 'mutation Submit($input: SubmitTaskInput!) { submitTask(input: $input) { id } }', { input: { title: 'metered task' } });
    const agents = await scrape(platform.agents.port);
    expect(agents.samples.every((s) => s.labels.service === 'agents')).toBe(true);
    expect(total(agents, 'graphql_operation_duration_seconds_count', { operation_type: 'mutation', operation_name: 'registerAgent' })).toBeGreaterThanOrEqual(
      1,
    );
    expect(total(agents, 'platform_agents')).toBeGreaterThanOrEqual(1);
    expect(total(agents, 'platform_agents', { health: 'OFFLINE' })).toBeGreaterThanOrEqual(1);
    const orchestration = await scrape(platform.orchestration.port);
    expect(orchestration.declared.get('platform_tasks')).toBe('gauge');
    expect(total(orchestration, 'platform_tasks', { state: 'SUBMITTED' })).toBeGreaterThanOrEqual(1);
    expect(
      total(orchestration, 'graphql_operation_duration_seconds_count', { operation_type: 'mutation', operation_name: 'submitTask', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(orchestration.declared.get('orchestration_lease_expiries_total')).toBe('counter');
    // Events published through the outbox, Redis or not.
    expect(total(agents, 'events_published_total', { outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(total(agents, 'subgraph_dependency_degraded', { dependency: 'events' })).toBe(0);
    // The database's own: pool use on PostgreSQL, group-commit sizes on SQLite.
    if (process.env.DATABASE_URL) expect(total(agents, 'pg_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
    else expect(total(agents, 'sqlite_group_commit_batch_size_count')).toBeGreaterThanOrEqual(1);
    // Default process metrics are on.
    expect(agents.declared.has('process_cpu_seconds_total')).toBe(true);
  });
});

describe('the dashboard and the alert rules', () => {
  it('use only metric names the services export', async () => {
    const declared = new Map<string, string>();
    for (const port of [platform.gateway.port, platform.agents.port, platform.orchestration.port, platform.governance.port]) {
      for (const [name, type] of (await scrape(port)).declared) declared.set(name, type);
    }
    const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'ops/grafana/agent-platform.json'), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const rules = parseYaml(readFileSync(join(REPO_ROOT, 'ops/prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const expressions = [
      ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
      ...rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr)),
    ];
    expect(expressions.length).toBeGreaterThan(20);
    const used = new Set(expressions.flatMap((expr) => metricNamesIn(expr)));
    // `up` is recorded by Prometheus itself for every scrape target.
    used.delete('up');
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used].filter((name) => familyOf(name, declared) === undefined);
    expect(missing).toEqual([]);
    const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual(
      expect.arrayContaining(['GatewayHighErrorRatio', 'GatewayP99OverBudget', 'SubgraphDown', 'SubgraphBreakerOpen', 'LeaseExpiryStorm']),
    );
  });

  it('reads PromQL metric names as Prometheus does', () => {
    expect(
      metricNamesIn('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{service="gateway",route=~"a|b"}[5m]))) > 1e3'),
    ).toEqual(['http_request_duration_seconds_bucket']);
    expect(metricNamesIn('sum(rate(a_total[$__rate_interval])) / on (x) group_left b_total and c')).toEqual(['a_total', 'b_total', 'c']);
    expect(familyOf('x_bucket', new Map([['x', 'histogram']]))).toBe('x');
    expect(familyOf('x_bucket', new Map([['x', 'gauge']]))).toBeUndefined();
  });
});
