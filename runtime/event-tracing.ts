// Spans for the event bus: a PRODUCER span per publish and a CONSUMER span per delivery, the
// delivery parented by the trace context the event carries (DomainEvent.trace), so one trace
// shows a mutation, its event and what the event caused in other services.
import type { ExecutionResult } from 'graphql';
import type { DomainEvent } from './events.ts';
import { contextFromCarrier, currentTraceCarrier, SpanKind, tracingEnabled, withSpan } from './tracing.ts';

/** Key of a subscription result's extensions that carries the event's trace context to the gateway. */
export const TRACE_EXTENSION = 'traceContext';

/**
 * A publish inside a PRODUCER span: the writing request's span for a publish right after commit,
 * or (`relayed`, the outbox relay publishing what nobody did) a span of the trace the stored
 * event carries, so a crash between commit and publish does not cut the trace in two.
 */
export function tracedPublish(event: DomainEvent, channel: string, publish: () => Promise<void>, relayed = false): Promise<void> {
  if (!tracingEnabled()) return publish();
  const parent = relayed ? contextFromCarrier(event.trace) : undefined;
  return withSpan(
    `publish ${event.type}`,
    {
      kind: SpanKind.PRODUCER,
      ...(parent ? { parent } : {}),
      attributes: {
        'messaging.operation.type': 'send',
        'messaging.destination.name': channel,
        'messaging.message.id': event.id,
        ...(relayed ? { 'outbox.relayed': true } : {}),
      },
    },
    publish,
  );
}

/**
 * Executes one subscription event inside a CONSUMER span continuing the event's trace, and puts the
 * span's trace context in the result's extensions for the gateway to continue in turn.
 */
export function tracedEventExecution(rootValue: unknown, execute: () => Promise<ExecutionResult>): Promise<ExecutionResult> {
  if (!tracingEnabled()) return execute();
  const event = rootValue as Partial<DomainEvent> | null;
  const parent = contextFromCarrier(event?.trace);
  return withSpan(
    `deliver ${event?.type ?? 'event'}`,
    {
      kind: SpanKind.CONSUMER,
      ...(parent ? { parent } : {}),
      attributes: { 'messaging.operation.type': 'process', ...(typeof event?.id === 'string' ? { 'messaging.message.id': event.id } : {}) },
    },
    async () => {
      const result = await execute();
      const carrier = currentTraceCarrier();
      return carrier ? { ...result, extensions: { ...result.extensions, [TRACE_EXTENSION]: carrier } } : result;
    },
  );
}
