// runtime/metrics.ts on its own: the bounding of operation names, tenant labels only when asked,
// nothing recorded when metrics are off, who may read /metrics, and counters fed from totals.
import { HeaderMap } from '@apollo/server';
import { describe, expect, it } from 'vitest';
import type { RequestInfo } from '../../runtime/http.ts';
import { callbackCounter, createServiceMetrics, loadMetricsConfig, metricsAccess, OperationNames, Registry } from '../../runtime/metrics.ts';
import { parseExposition, seriesOf, total } from '../support/metrics.ts';

async function exposition(registry: Registry) {
  return parseExposition(await registry.metrics());
}

function request(headers: Record<string, string> = {}): RequestInfo {
  return { requestId: 'r', headers: new HeaderMap(Object.entries(headers)), remoteAddress: '127.0.0.1' };
}

describe('runtime metrics', () => {
  it('keeps known operation names and turns every other one into "other"', () => {
    const names = new OperationNames(['GetAgent']);
    expect(names.label('GetAgent')).toBe('GetAgent');
    expect(names.label('getagent')).toBe('other');
    expect(names.label('x'.repeat(500))).toBe('other');
    expect(names.label(undefined)).toBe('anonymous');
    expect(names.label(null)).toBe('anonymous');
  });

  it('labels operations with the tenant only with METRICS_TENANT_LABELS=true', async () => {
    const plain = createServiceMetrics('test', loadMetricsConfig({}));
    plain.observeOperation({ type: 'query', name: 'A', tenant: 't1' }, 0.01, []);
    expect(seriesOf(await exposition(plain.registry), 'graphql_operation_duration_seconds_count')).toEqual([
      { service: 'test', operation_type: 'query', operation_name: 'other', outcome: 'ok' },
    ]);
    const tenants = createServiceMetrics('test', loadMetricsConfig({ METRICS_TENANT_LABELS: 'true' }));
    tenants.operationNames.add(['A']);
    tenants.observeOperation({ type: 'query', name: 'A', tenant: 't1' }, 0.01, ['NOT_FOUND', 'NOT_FOUND']);
    const e = await exposition(tenants.registry);
    expect(total(e, 'graphql_operation_duration_seconds_count', { operation_name: 'A', tenant: 't1', outcome: 'error' })).toBe(1);
    expect(total(e, 'graphql_operation_errors_total', { operation_name: 'A', code: 'NOT_FOUND', tenant: 't1' })).toBe(2);
  });

  it('records nothing, not even process metrics, with METRICS_ENABLED=false', async () => {
    const off = createServiceMetrics('test', loadMetricsConfig({ METRICS_ENABLED: 'false' }));
    off.observeOperation({ type: 'query', name: 'A' }, 0.01, []);
    off.observeRequest('GET', '/graphql', 200, 0.01);
    expect((await exposition(off.registry)).samples).toEqual([]);
  });

  it('labels an unknown method "other" and bounds routes to known paths', async () => {
    const metrics = createServiceMetrics('test', loadMetricsConfig({}));
    expect(metrics.routeOf('/graphql', request(), '/graphql')).toBe('/graphql');
    expect(metrics.routeOf('/v1/agents/123', request(), '/graphql')).toBe('other');
    expect(metrics.routeOf('/v1/agents/123', { ...request(), route: 'GET /v1/agents/{id}' }, '/graphql')).toBe('GET /v1/agents/{id}');
    metrics.paths.add('/graphql/stream');
    expect(metrics.routeOf('/graphql/stream', request(), '/graphql')).toBe('/graphql/stream');
    metrics.observeRequest('BREW', 'other', 400, 0.001);
    expect(total(await exposition(metrics.registry), 'http_request_duration_seconds_count', { method: 'other', route: 'other', status: '400' })).toBe(1);
  });

  it('lets anyone read /metrics in development, and in production only the token holder', async () => {
    expect(await metricsAccess(loadMetricsConfig({}), false)(request())).toBe('allowed');
    const closed = await metricsAccess(loadMetricsConfig({}), true)(request());
    expect(closed).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    const token = loadMetricsConfig({ METRICS_TOKEN: 'sesame' });
    expect(await metricsAccess(token, true)(request({ authorization: 'Bearer sesame' }))).toBe('allowed');
    expect(await metricsAccess(token, true)(request({ authorization: 'Bearer sesam' }))).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    // A token set in development is required there too.
    expect(await metricsAccess(token, false)(request())).toMatchObject({ status: 401 });
  });

  it('moves a counter fed from a running total by what the total moved', async () => {
    const registry = new Registry();
    let sent = 3;
    callbackCounter(registry, { name: 'fed_total', help: 'fed', labelNames: ['result'] as const }, () => ({ sent }), 'result');
    expect(total(await exposition(registry), 'fed_total', { result: 'sent' })).toBe(3);
    sent = 5;
    expect(total(await exposition(registry), 'fed_total', { result: 'sent' })).toBe(5);
    expect(total(await exposition(registry), 'fed_total', { result: 'sent' })).toBe(5);
  });

  it('refuses bad values of its variables, all at once', () => {
    expect(() => loadMetricsConfig({ METRICS_ENABLED: 'maybe', METRICS_PORT: '70000' })).toThrow(/METRICS_ENABLED[\s\S]*METRICS_PORT/);
  });
});
