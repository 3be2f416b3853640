// The gateway's tracing seams: one CLIENT span per subgraph request (its trace context injected
// into that request's headers), and a CONSUMER span per subscription event that continues the
// trace of the write that caused the event (carried by the subgraph in the result's extensions).
import { type DocumentNode, type FormattedExecutionResult, getOperationAST } from 'graphql';
import { TRACE_EXTENSION } from '../runtime/event-tracing.ts';
import { contextFromCarrier, failed, injectTraceHeaders, SpanKind, startSpan, tracingEnabled, withSpan } from '../runtime/tracing.ts';

/** Sends through send() inside a span; headers get traceparent/tracestate before it is called. */
export function tracedSubgraphFetch<T>(subgraph: string, url: string, headers: Record<string, string>, send: () => Promise<T>): Promise<T> {
  if (!tracingEnabled()) return send();
  return withSpan(`subgraph ${subgraph}`, { kind: SpanKind.CLIENT, attributes: { 'graphql.subgraph.name': subgraph, 'url.full': url } }, async () => {
    injectTraceHeaders(headers);
    return send();
  });
}

const NO_SPAN = (): void => {};

/**
 * A CLIENT span for opening a subscription on a subgraph, in the trace of the operation that
 * opened it (the stream is then shared by other clients): from the subscribe to its first result
 * or its end, so a slow or refused upstream subscribe shows. Returns what ends it (idempotent).
 */
export function upstreamSubscribeSpan(subgraph: string, url: string): (error?: string) => void {
  const started = startSpan(`subscribe ${subgraph}`, { kind: SpanKind.CLIENT, attributes: { 'graphql.subgraph.name': subgraph, 'url.full': url } });
  if (!started) return NO_SPAN;
  let ended = false;
  return (error) => {
    if (ended) return;
    ended = true;
    if (error !== undefined) failed(started.span, new Error(error));
    started.span.end();
  };
}

/** Runs one upstream subscription event's execution as part of the trace the event carries. */
export function tracedSubscriptionEvent(
  subgraph: string,
  event: FormattedExecutionResult,
  execute: () => Promise<FormattedExecutionResult>,
): Promise<FormattedExecutionResult> {
  if (!tracingEnabled()) return execute();
  const parent = contextFromCarrier(event.extensions?.[TRACE_EXTENSION]);
  return withSpan(
    `subscription event from ${subgraph}`,
    { kind: SpanKind.CONSUMER, ...(parent ? { parent } : {}), attributes: { 'graphql.subgraph.name': subgraph, 'messaging.operation.type': 'process' } },
    execute,
  );
}

/**
 * A SERVER span for an operation started over a long-lived transport (graphql-ws, SSE), child of
 * the traceparent its connection's request carried, covering the operation's start (for a
 * subscription: planning and the upstream subscribe; each event then has a span of its own).
 */
export async function tracedOperation<T>(
  transport: string,
  operation: { operationName?: string | null | undefined; document: DocumentNode },
  carrier: unknown,
  start: () => Promise<T>,
): Promise<T> {
  if (!tracingEnabled()) return start();
  // A client may leave operationName out when the document has one operation: name it anyway.
  const operationName = operation.operationName ?? getOperationAST(operation.document)?.name?.value;
  const headers = (carrier as { headers?: { get(name: string): string | undefined } } | null)?.headers;
  const traceparent = headers?.get('traceparent');
  const tracestate = headers?.get('tracestate');
  const parent = contextFromCarrier(traceparent ? { traceparent, ...(tracestate ? { tracestate } : {}) } : undefined);
  return withSpan(
    `${transport} ${operationName ?? 'operation'}`,
    { kind: SpanKind.SERVER, ...(parent ? { parent } : {}), attributes: { 'network.protocol.name': transport, 'graphql.operation.name': operationName ?? '' } },
    start,
  );
}
