// Tracing off is the default and must cost nothing: without an OTLP endpoint no SDK is started,
// spans are the API's non-recording ones, and the seams pass straight through.
import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../runtime/config.ts';
import { graphqlTracingPlugins } from '../../runtime/graphql-tracing.ts';
import {
  currentTraceCarrier,
  loadTracingConfig,
  parseOtlpHeaders,
  recordedTraceId,
  startTracing,
  traceLogFields,
  tracesUrl,
  tracingEnabled,
  withSpan,
} from '../../runtime/tracing.ts';

describe('tracing configuration', () => {
  it('is off without an endpoint; the traces endpoint wins over the base one', () => {
    expect(tracesUrl(loadTracingConfig({}))).toBeUndefined();
    expect(tracesUrl(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }))).toBe('http://collector:4318/v1/traces');
    expect(
      tracesUrl(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/otlp' })),
    ).toBe('https://traces.example/otlp');
  });

  it('refuses a bad sampler, ratio or endpoint, naming the variable', () => {
    expect(() => loadTracingConfig({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER: expected one of/);
    expect(() => loadTracingConfig({ OTEL_TRACES_SAMPLER_ARG: '1.5' })).toThrow(ConfigError);
    expect(() => loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(loadTracingConfig({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' })).toMatchObject({
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: 0.1,
    });
  });

  it('reads OTEL_EXPORTER_OTLP_HEADERS as name=value pairs with URL-encoded values', () => {
    expect(parseOtlpHeaders('Authorization=Bearer%20abc, x-tenant = t1,broken', 'x-extra=1')).toEqual({
      authorization: 'Bearer abc',
      'x-tenant': 't1',
      'x-extra': '1',
    });
  });
});

describe('tracing off', () => {
  it('starts no SDK: no provider is registered and spans do not record', async () => {
    const tracing = await startTracing('test-service', loadTracingConfig({}));
    expect(tracing.enabled).toBe(false);
    expect(tracingEnabled()).toBe(false);
    // The global provider is still the API's proxy with its no-op delegate.
    const provider = trace.getTracerProvider() as unknown as { getDelegate(): object };
    expect(provider.constructor.name).toBe('ProxyTracerProvider');
    expect(provider.getDelegate().constructor.name).toBe('NoopTracerProvider');
    const recording = await withSpan('anything', {}, async (span) => span.isRecording());
    expect(recording).toBe(false);
    expect(currentTraceCarrier()).toBeUndefined();
    expect(recordedTraceId()).toBeUndefined();
    expect(traceLogFields()).toEqual({});
    expect(graphqlTracingPlugins()).toEqual([]);
    await tracing.shutdown();
  });
});
