// OpenTelemetry tracing for the gateway and every subgraph. The SDK is loaded and started only
// when an OTLP endpoint is configured; otherwise every helper here returns at its first line and
// only @opentelemetry/api's no-op tracer is ever touched (tracing off costs a boolean test).
//
// Spans are made explicitly at our own seams (incoming requests, GraphQL phases, subgraph fetches,
// SQL statements, events, sweepers) rather than by auto-instrumentation: the gateway is an esbuild
// bundle and everything is ESM, where require-hook instrumentation does not apply.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanOptions as ApiSpanOptions,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { env, loadConfig, type ConfigOf } from './config.ts';

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

/** The standard OpenTelemetry variables we honour (read through the schema-checked loader). */
export const tracingSpec = {
  OTEL_EXPORTER_OTLP_ENDPOINT: env.url('OTLP/HTTP base URL; when set (or the traces one is), spans are exported to <url>/v1/traces', ['http', 'https']),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.url('OTLP/HTTP URL for traces, used as is; overrides OTEL_EXPORTER_OTLP_ENDPOINT', ['http', 'https']),
  OTEL_EXPORTER_OTLP_HEADERS: env.optionalString('headers sent with every export, "name=value,name2=value2" (values URL-encoded)'),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: env.optionalString('headers sent with trace exports; added to OTEL_EXPORTER_OTLP_HEADERS'),
  OTEL_SERVICE_NAME: env.optionalString('service.name of the spans; default the service itself (gateway, agents, orchestration, governance)'),
  OTEL_TRACES_SAMPLER: env.oneOf('which traces are recorded', SAMPLERS, 'parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: {
    doc: 'ratio 0..1 for the traceidratio samplers',
    default: 1,
    parse(raw: string): number {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new Error(`expected a number from 0 to 1, got "${raw}"`);
      return n;
    },
  },
};

export type TracingConfig = ConfigOf<typeof tracingSpec>;

export function loadTracingConfig(source: Record<string, string | undefined> = process.env): TracingConfig {
  return loadConfig(tracingSpec, source);
}

/** Where spans go, or undefined when tracing is off. */
export function tracesUrl(config: TracingConfig): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT) return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** "a=b,c=d" (W3C baggage-like, values URL-encoded) as a header object; malformed entries are skipped. */
export function parseOtlpHeaders(...lists: (string | undefined)[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const list of lists) {
    for (const entry of (list ?? '').split(',')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const name = entry.slice(0, eq).trim().toLowerCase();
      try {
        headers[name] = decodeURIComponent(entry.slice(eq + 1).trim());
      } catch {
        headers[name] = entry.slice(eq + 1).trim();
      }
    }
  }
  return headers;
}

export interface Tracing {
  /** False when no endpoint is configured: nothing was loaded, every span is a no-op. */
  readonly enabled: boolean;
  /** Runs fn (and the timers and requests it starts) with this service's tracer as the active one. */
  run<T>(fn: () => T): T;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** True once any service of this process started the SDK: the helpers' fast path when false. */
let enabled = false;
/** The provider of the service a context belongs to (several services may share a process). */
const PROVIDER = createContextKey('agent-platform tracer provider');
/** The provider of contexts that name none: the service started last (the gateway under `npm start`). */
let fallbackProvider: TracerProvider | undefined;
const INSTRUMENTATION = 'agent-platform';
const NON_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export function tracingEnabled(): boolean {
  return enabled;
}

const OFF: Tracing = { enabled: false, run: (fn) => fn(), shutdown: async () => {} };

/**
 * Starts tracing for one service (the gateway or a subgraph) when OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Several services in one process (`npm start`) each get
 * their own provider, so their spans carry their own service.name; the context manager and the
 * W3C propagator are global and set once.
 */
export async function startTracing(service: string, config: TracingConfig): Promise<Tracing> {
  const url = tracesUrl(config);
  if (!url) return OFF;
  // Loaded only now: with tracing off, none of the SDK is imported.
  const [
    { BasicTracerProvider, BatchSpanProcessor, AlwaysOnSampler, AlwaysOffSampler, ParentBasedSampler, TraceIdRatioBasedSampler },
    { OTLPTraceExporter },
    resources,
    core,
    hooks,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
  ]);
  const ratio = new TraceIdRatioBasedSampler(config.OTEL_TRACES_SAMPLER_ARG);
  const sampler = {
    always_on: new AlwaysOnSampler(),
    always_off: new AlwaysOffSampler(),
    traceidratio: ratio,
    parentbased_always_on: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    parentbased_always_off: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
    parentbased_traceidratio: new ParentBasedSampler({ root: ratio }),
  }[config.OTEL_TRACES_SAMPLER];
  const exporter = new OTLPTraceExporter({ url, headers: parseOtlpHeaders(config.OTEL_EXPORTER_OTLP_HEADERS, config.OTEL_EXPORTER_OTLP_TRACES_HEADERS) });
  const provider = new BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME ?? service }),
    sampler,
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
  });
  fallbackProvider = provider;
  if (!enabled) {
    context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
    // Global, so that @apollo/gateway's own spans (gateway.plan, gateway.fetch...) are exported too.
    trace.setGlobalTracerProvider(routingProvider);
    enabled = true;
  }
  return {
    enabled: true,
    run: (fn) => context.with(context.active().setValue(PROVIDER, provider), fn),
    shutdown: () => provider.shutdown(),
  };
}

function providerIn(ctx: Context): TracerProvider | undefined {
  return (ctx.getValue(PROVIDER) as TracerProvider | undefined) ?? fallbackProvider;
}

/** Hands each span to the provider of the service whose context it starts in. */
class RoutingTracer implements Tracer {
  constructor(
    private readonly name: string,
    private readonly version: string | undefined,
  ) {}

  private in(ctx: Context | undefined): Tracer {
    return (providerIn(ctx ?? context.active()) ?? NO_PROVIDER).getTracer(this.name, this.version);
  }

  startSpan(name: string, options?: ApiSpanOptions, ctx?: Context): Span {
    return this.in(ctx).startSpan(name, options, ctx);
  }

  startActiveSpan: Tracer['startActiveSpan'] = (...args: unknown[]) => {
    // (name, fn), (name, options, fn) or (name, options, context, fn): only the last names a context.
    const ctx = args.length >= 4 ? (args[2] as Context | undefined) : undefined;
    const tracer = this.in(ctx);
    return (tracer.startActiveSpan as (...a: unknown[]) => unknown).apply(tracer, args) as never;
  };
}

// A proxy that never gets a delegate: its tracers are the API's no-op ones.
const NO_PROVIDER: TracerProvider = new ProxyTracerProvider();
const routingProvider: TracerProvider = { getTracer: (name, version) => new RoutingTracer(name, version) };

function tracerIn(ctx: Context): Tracer {
  return (providerIn(ctx) ?? NO_PROVIDER).getTracer(INSTRUMENTATION);
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** The parent, when it is not the active context (an event's producer). */
  parent?: Context;
}

/** Runs fn inside a new span (ended when fn settles, marked as an error when it throws). */
export async function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!enabled) return fn(NON_RECORDING);
  const parent = options.parent ?? context.active();
  const span = tracerIn(parent).startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, ...(options.attributes ? { attributes: options.attributes } : {}) },
    parent,
  );
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await fn(span);
    } catch (err) {
      failed(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Starts a span the caller ends (a span that outlives one function call); undefined when off. */
export function startSpan(name: string, options: SpanOptions = {}): { span: Span; context: Context } | undefined {
  if (!enabled) return undefined;
  const parent = options.parent ?? context.active();
  const span = tracerIn(parent).startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, ...(options.attributes ? { attributes: options.attributes } : {}) },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

export function failed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** Runs fn with ctx active (a span made by startSpan). */
export function within<T>(ctx: Context | undefined, fn: () => T): T {
  return ctx ? context.with(ctx, fn) : fn();
}

/**
 * The incoming request's SERVER span, child of the client's traceparent, ended when the response
 * is finished or the connection closes. The trace id goes out as x-trace-id. Off: calls fn.
 */
export function traceIncoming(req: IncomingMessage, res: ServerResponse, fn: () => Promise<void>, base?: Context): Promise<void> {
  if (!enabled) return fn();
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const parent = propagation.extract(base ?? context.active(), req.headers, headerGetter);
  const started = startSpan(`${req.method ?? 'GET'} ${path}`, {
    kind: SpanKind.SERVER,
    parent,
    attributes: { 'http.request.method': req.method ?? 'GET', 'url.path': path, 'http.route': path },
  });
  if (!started) return fn();
  const { span } = started;
  if (span.isRecording()) res.setHeader('x-trace-id', span.spanContext().traceId);
  res.once('close', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  return context.with(started.context, fn);
}

/**
 * The context a server is created in (inside its service's Tracing.run), for traceIncoming: the
 * requests' spans then go to that service's provider. Undefined when off.
 */
export function serviceContext(): Context | undefined {
  return enabled ? context.active() : undefined;
}

const headerGetter = {
  keys: (carrier: IncomingMessage['headers']) => Object.keys(carrier),
  get: (carrier: IncomingMessage['headers'], key: string) => carrier[key],
};

/** Adds traceparent/tracestate of the active span to outgoing headers. Off: nothing. */
export function injectTraceHeaders(headers: Record<string, string>): void {
  if (!enabled) return;
  propagation.inject(context.active(), headers);
}

/** traceparent/tracestate of the active span as a new header object; {} when off. */
export function traceHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  if (enabled) propagation.inject(context.active(), headers);
  return headers;
}

/** W3C trace context as carried by a domain event or a subscription result's extensions. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** The active span's context, to carry across the event bus; undefined when off or not sampled. */
export function currentTraceCarrier(): TraceCarrier | undefined {
  if (!enabled) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (!carrier.traceparent) return undefined;
  return carrier.tracestate ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate } : { traceparent: carrier.traceparent };
}

/** The context a carrier names, to parent a span with; undefined when off or absent. */
export function contextFromCarrier(carrier: unknown): Context | undefined {
  if (!enabled || typeof carrier !== 'object' || carrier === null) return undefined;
  const { traceparent, tracestate } = carrier as Record<string, unknown>;
  if (typeof traceparent !== 'string') return undefined;
  const fields: Record<string, string> = { traceparent };
  if (typeof tracestate === 'string') fields.tracestate = tracestate;
  return propagation.extract(context.active(), fields);
}

/** trace_id and span_id of the active span, for log lines (pino mixin); {} when none. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  if (!enabled) return {};
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** The active trace's id when its span is recorded (worth looking up), for error responses. */
export function recordedTraceId(): string | undefined {
  if (!enabled) return undefined;
  const span = trace.getActiveSpan();
  return span?.isRecording() ? span.spanContext().traceId : undefined;
}

export { SpanKind };
