// The gateway's fast path for GraphQL over HTTP POST, REST routes, and queries and mutations over
// graphql-ws and SSE. Apollo Server's request pipeline (plugin hooks, the query's SHA-256 for its
// document cache, content negotiation, response assembly) was the largest per-request cost of a
// cached operation that was neither Node's nor the executor's (bench/README.md). A document Apollo
// has parsed, validated, admitted and executed once is remembered here, keyed by its exact text
// and operation name; a later request of the same text (a REST route's operation is always the
// same text) goes straight to the execution core (access control, query plan, subgraph fetches:
// the same executor Apollo calls) and its answer is written as Apollo writes it.
//
// Only the plain case is taken: for HTTP, a JSON body of query, operationName and variables and
// an Accept header whose answer Apollo has already chosen; the schema the document was validated
// against; and an answer with data and no errors. Everything else goes to Apollo Server
// unchanged. An answer with errors (or cache hints, or extensions) is handed to Apollo with the
// context already built and the result already computed, so Apollo formats, masks and codes it
// exactly as it does every error, and nothing (a mutation above all) runs twice.
import {
  HeaderMap,
  type ApolloServer,
  type ApolloServerPlugin,
  type GraphQLRequest,
  type GraphQLResponse,
  type HTTPGraphQLRequest,
  type HTTPGraphQLResponse,
} from '@apollo/server';
import type {
  GatewayExecutionResult,
  GatewayExecutor,
  GatewayGraphQLRequestContext,
  GatewayInterface,
  GatewaySchemaHash,
} from '@apollo/server-gateway-interface';
import type { DocumentNode, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { Logger } from '../runtime/logger.ts';
import type { GatewayContext } from './context.ts';

/** What Apollo Server resolved for a document it executed: everything the executor needs. */
interface PreparedOperation {
  schema: GraphQLSchema;
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName: string | null;
  queryHash: string;
  source: string;
}

/** A cache hint a subgraph's Cache-Control gave (gateway/subgraph-client.ts restricts the request's policy). */
interface CacheHint {
  maxAge?: number;
  scope?: 'PRIVATE' | 'PUBLIC';
}

/**
 * What the fast path computed, for Apollo Server to answer with: the executor Apollo calls returns
 * it instead of executing, after restricting Apollo's cache policy with the subgraphs' hints (as the
 * subgraph client would have), so Apollo's cache-control plugin decides the header.
 */
type Replay = { result: GatewayExecutionResult; hints: CacheHint[] } | { error: unknown };

interface PendingReplay {
  replay: Replay;
  delivered: boolean;
}

const REPLAY = Symbol('prepared operation replay');

export interface PreparedOperationsOptions {
  /** Most documents remembered (first in, first out); 0 turns the fast path off. */
  max: number;
  /** Longest document text remembered, in characters. */
  maxDocumentLength?: number;
  /**
   * Whether a document may skip the pipeline's per-request plugins. False for what a plugin must
   * see on every request (TRUSTED_DOCUMENTS=log logs each use of an unregistered document).
   */
  admits(query: string): boolean;
  logger: Logger;
}

export interface PreparedOperationsStats {
  size: number;
  /** Requests answered by the fast path (including those handed to Apollo for their errors). */
  hits: number;
  /** Plain POSTs and REST operations Apollo Server answered from the start. */
  misses: number;
}

export interface PreparedOperations {
  /** Wraps the gateway given to ApolloServer: captures its executor and lets Apollo answer with a computed result. */
  wrap(gateway: GatewayInterface): GatewayInterface;
  /** Remembers what Apollo Server resolved for the documents it executes. */
  plugin: ApolloServerPlugin<GatewayContext>;
  /** In place of apollo.executeHTTPGraphQLRequest for the HTTP transport. */
  execute(apollo: ApolloServer<GatewayContext>, request: HTTPGraphQLRequest, context: () => Promise<GatewayContext>): Promise<HTTPGraphQLResponse>;
  /** In place of apollo.executeOperation for transports that build the context themselves (REST, graphql-ws, SSE). */
  executeOperation(apollo: ApolloServer<GatewayContext>, request: GraphQLRequest, contextValue: GatewayContext): Promise<GraphQLResponse>;
  stats(): PreparedOperationsStats;
  /**
   * Checks, against the Apollo Server running now, what the fast path relies on of its internals
   * (gateway/self-check.ts runs it at start): executionDidStart hands over what a repeat needs, and
   * the context Apollo gives the executor carries the replay slot. Runs `probe` (a query with no
   * required variables that the gateway admits) through Apollo twice; returns what no longer holds.
   */
  selfCheck(apollo: ApolloServer<GatewayContext>, probe: string, contextValue: GatewayContext): Promise<string[]>;
}

// The body fields of a plain GraphQL-over-HTTP request; any other field (extensions, documentId)
// has a plugin that must see it.
const PLAIN_FIELDS = new Set(['query', 'operationName', 'variables']);
// What Apollo's CSRF prevention accepts without further checks, and what our transport parses.
const JSON_CONTENT_TYPE = /^application\/json\s*(?:;|$)/i;
// Apollo's answer when no Accept header is sent (chooseContentTypeForSingleResultResponse).
const DEFAULT_CONTENT_TYPE = 'application/json; charset=utf-8';
// The header that, outside production, asks @apollo/gateway to add its query plan to the answer.
const QUERY_PLAN_HEADER = 'apollo-query-plan-experimental';
const MAX_LEARNED_ACCEPTS = 64;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function keyOf(query: string, operationName: string | undefined): string {
  return operationName === undefined ? query : `${query}\u0000${operationName}`;
}

interface PlainRequest {
  query: string;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
}

/** A successful answer's data and headers, or what Apollo must answer instead. */
type Outcome = { replay: Replay; data?: never; headers?: never } | { replay?: never; data: Record<string, unknown>; headers: HeaderMap };

/** The body's query, operation name and variables when it is a plain request; undefined otherwise. */
function plainBody(request: HTTPGraphQLRequest): PlainRequest | undefined {
  if (request.method !== 'POST') return undefined;
  const body: unknown = request.body;
  if (!isRecord(body)) return undefined;
  for (const field in body) if (!PLAIN_FIELDS.has(field)) return undefined;
  const { query, operationName, variables } = body;
  if (typeof query !== 'string' || query === '') return undefined;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  if (variables !== undefined && variables !== null && !isRecord(variables)) return undefined;
  return { query, operationName: operationName ?? undefined, variables: variables ?? undefined };
}

/** Records the hints, so the answer can be left to Apollo's cache-control plugin when one allows caching. */
class CacheHints {
  cacheable = false;
  readonly hints: CacheHint[] = [];
  restrict(hint: CacheHint): void {
    this.hints.push(hint);
    if (hint.maxAge !== undefined && hint.maxAge > 0) this.cacheable = true;
  }
}

export function createPreparedOperations(options: PreparedOperationsOptions): PreparedOperations {
  const maxLength = options.maxDocumentLength ?? 32_768;
  const prepared = new Map<string, PreparedOperation>();
  // Accept header → the content type Apollo answered it with (a function of the header alone).
  const contentTypes = new Map<string, string>();
  let executor: GatewayExecutor | undefined;
  let schema: GraphQLSchema | undefined;
  let hits = 0;
  let misses = 0;

  const remember = (key: string, entry: PreparedOperation) => {
    if (prepared.has(key)) return;
    if (prepared.size >= options.max) {
      const oldest = prepared.keys().next();
      if (!oldest.done) prepared.delete(oldest.value);
    }
    prepared.set(key, entry);
  };

  const contentTypeFor = (headers: HeaderMap): string | undefined => {
    const accept = headers.get('accept');
    return accept ? contentTypes.get(accept) : DEFAULT_CONTENT_TYPE;
  };

  const learnContentType = (request: HTTPGraphQLRequest, response: HTTPGraphQLResponse) => {
    const accept = request.headers.get('accept');
    const type = response.headers.get('content-type');
    // Only from executed answers: an error answer is JSON whatever the client accepts.
    if (!accept || !type || (response.status !== undefined && response.status !== 200) || contentTypes.has(accept)) return;
    if (contentTypes.size >= MAX_LEARNED_ACCEPTS) return;
    contentTypes.set(accept, type);
  };

  /** The document Apollo executed for this text and operation name, if still valid for the schema served. */
  const current = (query: string, operationName: string | undefined): PreparedOperation | undefined => {
    const entry = prepared.get(keyOf(query, operationName));
    return entry && executor && entry.schema === schema ? entry : undefined;
  };

  /** Runs the operation through the executor Apollo calls; what Apollo must answer comes back as a replay. */
  const run = async (apollo: ApolloServer<GatewayContext>, entry: PreparedOperation, request: PlainRequest, context: GatewayContext): Promise<Outcome> => {
    const hints = new CacheHints();
    const requestContext: GatewayGraphQLRequestContext = {
      request: {
        query: request.query,
        ...(request.operationName !== undefined && { operationName: request.operationName }),
        ...(request.variables !== undefined && { variables: request.variables }),
      },
      logger: options.logger,
      schema: entry.schema,
      // What Apollo Server passes too (makeGatewayGraphQLRequestContext); nothing reads it.
      schemaHash: 'schemaHash no longer exists since Apollo Server 4' as unknown as GatewaySchemaHash,
      context,
      cache: apollo.cache,
      queryHash: entry.queryHash,
      document: entry.document,
      source: entry.source,
      operationName: entry.operationName,
      operation: entry.operation,
      metrics: {},
      debug: false,
      overallCachePolicy: hints,
      requestIsBatched: false,
    };
    let result: GatewayExecutionResult;
    try {
      // executor is set: current() returned the entry.
      result = await (executor as GatewayExecutor)(requestContext);
    } catch (error) {
      return { replay: { error } };
    }
    if (result.errors?.length || result.extensions !== undefined || result.data == null || hints.cacheable) return { replay: { result, hints: hints.hints } };
    const headers = new HeaderMap();
    for (const [name, value] of Object.entries(context.rateLimitHeaders ?? {})) headers.set(name, value);
    // What Apollo's cache-control plugin answers for an uncacheable result.
    headers.set('cache-control', 'no-store');
    return { data: result.data, headers };
  };

  /** Apollo answers with what the fast path computed, through its own error formatting and plugins. */
  const viaApollo = async <R>(context: GatewayContext, replay: Replay, answer: () => Promise<R>): Promise<R> => {
    const pending: PendingReplay = { replay, delivered: false };
    // On the context, under a symbol, because executeOperation hands the executor a copy of it
    // (Object.assign keeps enumerable symbol properties: the copy points at the same slot). Safe
    // only because every transport builds one context per request (or graphql-ws operation): a
    // context shared by concurrent operations would let one take the other's result.
    Object.defineProperty(context, REPLAY, { value: pending, enumerable: true, configurable: true });
    try {
      return await answer();
    } finally {
      Reflect.deleteProperty(context, REPLAY);
      // Apollo answered without reaching the executor (the schema changed in between and the
      // document no longer validates): what ran is logged, as the client's answer is not it.
      if (!pending.delivered)
        options.logger.warn({ requestId: context.requestId }, 'prepared operation: Apollo answered without the executed result (schema changed meanwhile)');
    }
  };

  return {
    wrap(gateway) {
      gateway.onSchemaLoadOrUpdate(({ apiSchema }) => {
        // Documents were validated against the previous schema: Apollo validates them again.
        schema = apiSchema;
        prepared.clear();
      });
      return {
        onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
        async load(loadOptions) {
          const loaded = await gateway.load(loadOptions);
          const inner = loaded.executor;
          executor = inner ?? undefined;
          if (!inner) return loaded;
          const replaying: GatewayExecutor = async (requestContext) => {
            const pending = (requestContext.context as { [REPLAY]?: PendingReplay })[REPLAY];
            if (!pending || pending.delivered) return inner(requestContext);
            pending.delivered = true;
            const { replay } = pending;
            if ('error' in replay) throw replay.error;
            const policy: { restrict(hint: CacheHint): void } = requestContext.overallCachePolicy;
            for (const hint of replay.hints) policy.restrict(hint);
            return replay.result;
          };
          return { ...loaded, executor: replaying };
        },
        stop: () => gateway.stop(),
      };
    },

    plugin: {
      async requestDidStart() {
        if (options.max === 0) return;
        return {
          // The text as Apollo ran it (after trusted documents or APQ put in a registered one): a
          // text and operation name always resolve to the same validated document and operation.
          async executionDidStart({ request, operation, document, queryHash, source, operationName, schema: validatedAgainst }) {
            const query = request.query;
            if (
              query === undefined ||
              query.length > maxLength ||
              !operation ||
              operation.operation === 'subscription' ||
              validatedAgainst !== schema ||
              !options.admits(query)
            )
              return;
            remember(keyOf(query, request.operationName ?? undefined), { schema: validatedAgainst, document, operation, operationName, queryHash, source });
          },
        };
      },
    },

    async execute(apollo, request, context) {
      const plain = options.max === 0 ? undefined : plainBody(request);
      const entry = plain && current(plain.query, plain.operationName);
      const contentType = entry && contentTypeFor(request.headers);
      if (!plain || !entry || !contentType || request.headers.has(QUERY_PLAN_HEADER) || !JSON_CONTENT_TYPE.test(request.headers.get('content-type') ?? '')) {
        if (plain) misses++;
        const response = await apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context });
        if (plain) learnContentType(request, response);
        return response;
      }
      hits++;
      const contextValue = context();
      let built: GatewayContext;
      try {
        built = await contextValue;
      } catch {
        // Refused (401, 429, 503): Apollo answers the same failure the way it answers it everywhere.
        return apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context: () => contextValue });
      }
      const outcome = await run(apollo, entry, plain, built);
      if (outcome.replay) {
        return viaApollo(built, outcome.replay, () => apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context: async () => built }));
      }
      outcome.headers.set('content-type', contentType);
      return { status: 200, headers: outcome.headers, body: { kind: 'complete', string: JSON.stringify({ data: outcome.data }) } };
    },

    async executeOperation(apollo, request, contextValue) {
      const { query, operationName, variables } = request;
      const entry = options.max === 0 || query === undefined || request.extensions !== undefined ? undefined : current(query, operationName);
      if (!entry || query === undefined) {
        misses++;
        return apollo.executeOperation(request, { contextValue });
      }
      hits++;
      const outcome = await run(apollo, entry, { query, operationName, variables }, contextValue);
      if (outcome.replay) return viaApollo(contextValue, outcome.replay, () => apollo.executeOperation(request, { contextValue }));
      return { http: { status: undefined, headers: outcome.headers }, body: { kind: 'single', singleResult: { data: outcome.data } } };
    },

    stats: () => ({ size: prepared.size, hits, misses }),

    async selfCheck(apollo, probe, contextValue) {
      if (options.max === 0) return [];
      const problems: string[] = [];
      const key = keyOf(probe, undefined);
      const had = prepared.has(key);
      try {
        await apollo.executeOperation({ query: probe }, { contextValue });
        if (!current(probe, undefined)) {
          problems.push(
            'a document Apollo Server executed was not remembered: executionDidStart no longer hands over its schema, document, operation, queryHash and source, or the gateway executor was not captured from load()',
          );
        }
        const marker = `selfCheck:${Math.random().toString(36).slice(2)}`;
        const answer = await viaApollo(contextValue, { result: { data: { __typename: marker } }, hints: [] }, () =>
          apollo.executeOperation({ query: probe }, { contextValue }),
        );
        const data = answer.body.kind === 'single' ? answer.body.singleResult.data : undefined;
        if (data?.__typename !== marker) {
          problems.push(
            'Apollo Server no longer hands the executor a context that carries the replay slot (a computed answer would run again): executeOperation must copy the context with its enumerable symbol properties',
          );
        }
      } finally {
        if (!had) prepared.delete(key);
      }
      return problems;
    },
  };
}
