// Where the registry's answer is applied: an Apollo Server plugin for everything that runs through
// Apollo (GraphQL over HTTP POST and GET, REST routes, queries and mutations over graphql-ws and
// SSE), and a gate for the subscription core (gateway/subscriptions), which parses subscriptions
// itself.
import type { ApolloServerPlugin, HTTPGraphQLRequest } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { Logger } from '../../runtime/logger.ts';
import type { GatewayContext } from '../context.ts';
import { documentIdOf, resolveTrustedDocument, type DocumentRequest, type TrustedDocumentRegistry } from './documents.ts';

// Apollo lets a plugin refuse a request only from didResolveOperation, after parsing and
// validation. A refused document is swapped for this one first, so an untrusted document is
// never parsed or validated (no parser work, no schema hints in validation errors), and the
// refusal is thrown where Apollo answers it with its code and status.
const STAND_IN = '{ __typename }';

function withoutPersistedQuery(extensions: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!extensions || !('persistedQuery' in extensions)) return extensions;
  const { persistedQuery: _dropped, ...rest } = extensions;
  return rest;
}

/**
 * `documentId` is not a field Apollo keeps, so it is read from the raw request, and only when no
 * query was sent: REST routes always send theirs, and their query strings are not ours to read.
 */
function documentIdParam(http: HTTPGraphQLRequest | undefined): unknown {
  if (!http) return undefined;
  if (http.method === 'GET') return new URLSearchParams(http.search).get('documentId') ?? undefined;
  const body: unknown = http.body;
  return typeof body === 'object' && body !== null ? (body as { documentId?: unknown }).documentId : undefined;
}

function logUntrusted(logger: Logger, error: GraphQLError, request: DocumentRequest & { operationName?: unknown }, transport: string): void {
  const { query } = request;
  logger.warn(
    {
      transport,
      code: error.extensions.code,
      operationName: typeof request.operationName === 'string' ? request.operationName : undefined,
      // Only for the documents enforce would refuse: what to look for in a manifest.
      documentId: typeof query === 'string' && query !== '' ? documentIdOf(query) : undefined,
    },
    'untrusted document (TRUSTED_DOCUMENTS=log: it runs; enforce would refuse it)',
  );
}

export function trustedDocumentsPlugin(registry: TrustedDocumentRegistry): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart({ request, contextValue }) {
      if (registry.mode === 'off') return;
      const noQuery = request.query === undefined || request.query === '';
      const resolved = resolveTrustedDocument(registry, {
        query: request.query,
        extensions: request.extensions,
        documentId: noQuery ? documentIdParam(request.http) : undefined,
      });
      if (!(resolved instanceof GraphQLError)) {
        // An id-only request runs the registered text; Apollo's own persisted-query cache stays out of it.
        request.query = resolved.query;
        request.extensions = withoutPersistedQuery(request.extensions);
        return;
      }
      if (registry.mode === 'log') {
        // Without a raw HTTP request it came from the subscription core, whose gate logged it already.
        if (request.http) logUntrusted(contextValue.logger, resolved, request, 'http');
        return;
      }
      request.query = STAND_IN;
      request.extensions = withoutPersistedQuery(request.extensions);
      return {
        async didResolveOperation() {
          throw resolved;
        },
      };
    },
  };
}

/** What the subscription core checks a request with (graphql-ws and SSE payloads). */
export type DocumentGate<R extends DocumentRequest> = (request: R) => R | GraphQLError;

/**
 * For the subscription core: the request with the registered text in place of an id, or the
 * refusal (enforce); with log, unregistered requests pass as sent and are logged. Undefined when
 * off, so the core skips the check.
 */
export function subscriptionDocumentGate<R extends DocumentRequest & { operationName?: unknown }>(
  registry: TrustedDocumentRegistry,
  logger: Logger,
): DocumentGate<R> | undefined {
  if (registry.mode === 'off') return undefined;
  return (request) => {
    const resolved = resolveTrustedDocument(registry, request);
    if (!(resolved instanceof GraphQLError)) return { ...request, query: resolved.query };
    if (registry.mode === 'enforce') return resolved;
    logUntrusted(logger, resolved, request, 'subscriptions');
    return request;
  };
}
