// Trusted documents: the registry of operations the gateway may run, and the one decision every
// transport asks of it. Ids are the SHA-256 of the document text (as in Apollo's persisted query
// manifest and automatic persisted queries), so "a body whose hash is registered" and "a body
// that is registered" are the same test: a Map lookup, no hashing on the request path.
import { createHash } from 'node:crypto';
import { GraphQLError } from 'graphql';

export const TRUSTED_DOCUMENTS_MODES = ['off', 'log', 'enforce'] as const;
/** off: everything runs, nothing is looked at; log: everything runs, unregistered documents are logged; enforce: only registered documents run. */
export type TrustedDocumentsMode = (typeof TRUSTED_DOCUMENTS_MODES)[number];

export interface TrustedDocumentRegistry {
  readonly mode: TrustedDocumentsMode;
  /** id (lower-case hex SHA-256 of the body) → body. */
  readonly byId: ReadonlyMap<string, string>;
  /** body → id. */
  readonly byBody: ReadonlyMap<string, string>;
}

/** What a client sent: GraphQL-over-HTTP fields as they arrived (unchecked). */
export interface DocumentRequest {
  query?: unknown;
  /** extensions.persistedQuery.sha256Hash is an id (Apollo clients send it). */
  extensions?: unknown;
  /** An id, bare hex or "sha256:<hex>" (the GraphQL over HTTP persisted-documents proposal). */
  documentId?: unknown;
}

export interface TrustedDocument {
  id: string;
  /** The registered text: what to parse and run. */
  query: string;
}

/** The id of a document: lower-case hex SHA-256 of its exact text. */
export function documentIdOf(body: string): string {
  return createHash('sha256').update(body).digest('hex');
}

export function createRegistry(mode: TrustedDocumentsMode, bodies: Iterable<string>): TrustedDocumentRegistry {
  const byId = new Map<string, string>();
  const byBody = new Map<string, string>();
  for (const body of bodies) {
    const id = documentIdOf(body);
    byId.set(id, body);
    byBody.set(body, id);
  }
  return { mode, byId, byBody };
}

export const TRUSTED_DOCUMENT_CODES = {
  /** A document text that is not registered (enforce refuses it). */
  notTrusted: 'OPERATION_NOT_TRUSTED',
  /** An id no registered document has (Apollo's code, so persisted-query links recognise it). */
  notFound: 'PERSISTED_QUERY_NOT_FOUND',
} as const;

function refusal(message: string, code: string, status: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code, http: { status } } });
}

function idFrom(value: unknown): string | undefined | GraphQLError {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '') return refusal('A document id must be a non-empty string', 'BAD_REQUEST', 400);
  const bare = value.startsWith('sha256:') ? value.slice('sha256:'.length) : value;
  return bare.toLowerCase();
}

function persistedQueryHash(extensions: unknown): unknown {
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  const persisted = (extensions as { persistedQuery?: unknown }).persistedQuery;
  if (typeof persisted !== 'object' || persisted === null) return undefined;
  return (persisted as { sha256Hash?: unknown }).sha256Hash;
}

/**
 * The registered document a request names, or why it names none (a coded GraphQLError whose
 * extensions.http.status is the HTTP status to answer with):
 *
 *   resolveTrustedDocument(registry, { query, extensions, documentId }): TrustedDocument | GraphQLError
 *
 * - a non-empty `query` must be registered text (OPERATION_NOT_TRUSTED, 403); an id sent with it
 *   must be that text's id (BAD_REQUEST, 400);
 * - otherwise `documentId` or `extensions.persistedQuery.sha256Hash` must name a registered
 *   document (PERSISTED_QUERY_NOT_FOUND, 404), whose text is returned to run in its place;
 * - neither: BAD_REQUEST (400).
 *
 * It does not look at the mode: with `enforce` the caller refuses on an error and runs
 * `.query` otherwise; with `log` it logs the error and runs the request as sent (`.query` may
 * still fill in an id-only request); with `off` it need not be called. Pure and cheap (one or two
 * Map lookups, no hashing, no parsing), for every transport and any fast path in front of Apollo.
 */
export function resolveTrustedDocument(registry: TrustedDocumentRegistry, request: DocumentRequest): TrustedDocument | GraphQLError {
  const fromBody = idFrom(request.documentId);
  if (fromBody instanceof GraphQLError) return fromBody;
  const fromExtensions = idFrom(persistedQueryHash(request.extensions));
  if (fromExtensions instanceof GraphQLError) return fromExtensions;
  if (fromBody !== undefined && fromExtensions !== undefined && fromBody !== fromExtensions) {
    return refusal('documentId and extensions.persistedQuery.sha256Hash name different documents', 'BAD_REQUEST', 400);
  }
  const id = fromBody ?? fromExtensions;
  const { query } = request;
  if (query !== undefined && query !== null && typeof query !== 'string') return refusal('"query" must be a string', 'BAD_REQUEST', 400);
  // Protocols that require a query string (graphql-ws, graphql-sse) send "" with an id.
  if (typeof query === 'string' && query !== '') {
    const registered = registry.byBody.get(query);
    if (registered === undefined) {
      return refusal(
        'This gateway runs only registered operations (trusted documents), and this document is not one of them. Send a registered document as it was registered, or its id.',
        TRUSTED_DOCUMENT_CODES.notTrusted,
        403,
      );
    }
    if (id !== undefined && id !== registered) return refusal('The document id sent does not match the document sent', 'BAD_REQUEST', 400);
    return { id: registered, query };
  }
  if (id === undefined)
    return refusal('Send a registered document ("query") or its id ("documentId" or extensions.persistedQuery.sha256Hash)', 'BAD_REQUEST', 400);
  const body = registry.byId.get(id);
  if (body === undefined) return refusal(`No registered document has the id "${id.slice(0, 80)}"`, TRUSTED_DOCUMENT_CODES.notFound, 404);
  return { id, query: body };
}
