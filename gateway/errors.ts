import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from '../runtime/logger.ts';
import { maskErrors } from '../runtime/subgraph.ts';
import { recordedTraceId } from '../runtime/tracing.ts';

/**
 * Why the gateway itself did not send a fetch (gateway/upstream): its circuit breaker for the
 * subgraph is open, or the subgraph's bulkhead and its queue are full. Stable, for clients and alerts.
 */
export type UnsentReason = 'CIRCUIT_OPEN' | 'BULKHEAD_FULL';

/** The error a client sees in place of the data a subgraph could not deliver. */
export function subgraphUnavailable(serviceName: string, reason: string, unsent?: UnsentReason): GraphQLError {
  return new GraphQLError(`Subgraph "${serviceName}" is unavailable: ${reason}`, {
    extensions: unsent ? { code: 'SUBGRAPH_UNAVAILABLE', serviceName, reason: unsent } : { code: 'SUBGRAPH_UNAVAILABLE', serviceName },
  });
}

/**
 * A subgraph answered more than SUBGRAPH_MAX_RESPONSE_BYTES: the gateway stopped reading (it
 * buffers whole answers) and the fields of that fetch are null. Its own code, as it is no outage:
 * the query asks for too much, or the subgraph misbehaves.
 */
export function subgraphResponseTooLarge(serviceName: string, limit: number): GraphQLError {
  return new GraphQLError(`Subgraph "${serviceName}" answered more than ${limit} bytes (SUBGRAPH_MAX_RESPONSE_BYTES); ask for fewer items or fields`, {
    extensions: { code: 'SUBGRAPH_RESPONSE_TOO_LARGE', serviceName, limit },
  });
}

/**
 * Errors naming a subgraph (extensions.serviceName) either came from that subgraph, which already
 * masked its own internals and gave them a code, or are SUBGRAPH_UNAVAILABLE from the data source:
 * both reach the client as they are. The gateway wraps a subgraph's error around the plain JSON it
 * received, so the shared maskErrors (which trusts only GraphQLError instances) would hide them.
 * Everything else is judged like in a subgraph: coded GraphQL errors pass, the rest is masked.
 */
export function formatGatewayError(logger: Logger) {
  const mask = maskErrors(logger);
  const format = (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const extensions = formatted.extensions ?? {};
    if (typeof extensions.serviceName === 'string') {
      const { stacktrace: _drop, ...rest } = extensions;
      return { ...formatted, extensions: { code: 'DOWNSTREAM_SERVICE_ERROR', ...rest } };
    }
    return mask(formatted, error);
  };
  // With tracing on, each error names the request's trace beside its code (see runtime/tracing.ts).
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const result = format(formatted, error);
    const traceId = recordedTraceId();
    return traceId ? { ...result, extensions: { ...result.extensions, traceId } } : result;
  };
}
