// Several services in one process (`npm start`): each exports its spans under its own
// service.name, also spans made through the global API by libraries (@apollo/gateway), and a span
// started outside every service's context goes to the service started last (the gateway there).
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTracingConfig, startTracing, tracingEnabled, withSpan, type Tracing } from '../../runtime/tracing.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';

let receiver: OtlpReceiver;
let alpha: Tracing;
let beta: Tracing;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const config = loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
  alpha = await startTracing('alpha', config);
  beta = await startTracing('beta', config);
});

afterAll(async () => {
  await receiver?.close();
});

describe('tracing with several services in one process', () => {
  it('exports each span under the service whose context it started in', async () => {
    expect(tracingEnabled()).toBe(true);
    await alpha.run(() =>
      withSpan('alpha-work', {}, async () => {
        // A library's span through the global API: a child of alpha's, exported by alpha.
        trace.getTracer('@apollo/gateway').startActiveSpan('library-span', (span) => span.end());
      }),
    );
    await beta.run(() => withSpan('beta-work', {}, async () => {}));
    await withSpan('no-service', {}, async () => {});
    await alpha.shutdown();
    await beta.shutdown();

    const serviceOf = (name: string) => receiver.spans.find((s) => s.name === name)?.service;
    expect(serviceOf('alpha-work')).toBe('alpha');
    expect(serviceOf('library-span')).toBe('alpha');
    expect(serviceOf('beta-work')).toBe('beta');
    expect(serviceOf('no-service')).toBe('beta');
    const parent = receiver.spans.find((s) => s.name === 'alpha-work');
    expect(receiver.spans.find((s) => s.name === 'library-span')?.parentSpanId).toBe(parent?.spanId);
  });
});
