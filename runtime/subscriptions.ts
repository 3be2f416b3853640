// Subscription support shared by the subgraphs and the gateway: per-event execution with a fresh
// context, the checks an operation passes before anything runs, and the subgraphs' graphql-ws
// endpoint. The queue events wait in is runtime/event-queue.ts, the subgraphs' event streams
// runtime/event-streams.ts; the gateway's side is gateway/subscriptions/.
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  validate,
  type ASTVisitor,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ParseOptions,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { baseContext, type RequestContext } from './context.ts';
import { IDENTITY_HEADER, type RequestIdentity } from './identity.ts';
import type { Logger } from './logger.ts';
import { bindEventStreams, type EventStreams } from './event-streams.ts';
import { tracedEventExecution } from './event-tracing.ts';

// ---------------------------------------------------------------------------------------------
// Per-event execution

/**
 * graphql-js's subscribe(), except that each event executes with a new context from
 * freshContext(). Per-request caches (dataloaders) would otherwise live as long as the
 * subscription and serve the first event's rows to every later one.
 */
export async function subscribeWithFreshContext(
  args: ExecutionArgs,
  freshContext: () => unknown,
): Promise<AsyncGenerator<ExecutionResult, undefined, unknown> | ExecutionResult> {
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream;
  const source = stream[Symbol.asyncIterator]();
  const mapped: AsyncGenerator<ExecutionResult, undefined, unknown> = {
    async next() {
      const result = await source.next();
      if (result.done) return { value: undefined, done: true };
      const run = async () => execute({ ...args, rootValue: result.value, contextValue: freshContext() });
      return { value: await tracedEventExecution(result.value, run), done: false };
    },
    async return() {
      await source.return?.(undefined);
      return { value: undefined, done: true };
    },
    async throw(err) {
      await source.return?.(undefined);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
  };
  return mapped;
}

// ---------------------------------------------------------------------------------------------
// Checking an operation before anything runs

/** What a graphql-ws Subscribe message or a GraphQL-over-SSE request carries. */
export interface OperationRequest {
  query?: unknown;
  operationName?: unknown;
  variables?: unknown;
  extensions?: unknown;
}

export interface CheckedOperation {
  query: string;
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName: string | undefined;
  /** As sent (JSON), already checked to coerce against the operation's variable definitions. */
  variables: Record<string, unknown>;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function coded(code: string, errors: readonly GraphQLError[]): GraphQLError[] {
  return errors.map(
    (e) =>
      new GraphQLError(e.message, {
        nodes: e.nodes ?? null,
        source: e.source ?? null,
        positions: e.positions ?? null,
        path: e.path ?? null,
        originalError: e.originalError ?? null,
        extensions: { ...e.extensions, code },
      }),
  );
}

/**
 * The GraphQL spec (and graphql-js 17) forbids @skip/@include on a subscription's root fields:
 * whether the operation subscribes to anything must not depend on variables. graphql-js 16 does
 * not check it; Apollo's query planner then fails on such an operation.
 */
export function NoConditionalSubscriptionRootRule(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node) {
      if (node.operation !== 'subscription') return;
      const seen = new Set<string>();
      const walk = (set: SelectionSetNode) => {
        for (const selection of set.selections) {
          const conditional = selection.directives?.find((d) => d.name.value === 'skip' || d.name.value === 'include');
          if (conditional) {
            const name = node.name ? `Subscription "${node.name.value}"` : 'Anonymous Subscription';
            context.reportError(
              new GraphQLError(`${name} must not use \`@skip\` or \`@include\` directives in the top level selection.`, { nodes: conditional }),
            );
          }
          if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet);
          if (selection.kind === Kind.FRAGMENT_SPREAD && !seen.has(selection.name.value)) {
            seen.add(selection.name.value);
            const fragment = context.getFragment(selection.name.value);
            if (fragment) walk(fragment.selectionSet);
          }
        }
      };
      walk(node.selectionSet);
    },
  };
}

/**
 * Parses, validates (graphql-js's rules plus extraRules) and resolves the operation and checks its
 * variables, with the codes Apollo Server uses over HTTP (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
 * OPERATION_RESOLUTION_FAILURE, BAD_USER_INPUT, BAD_REQUEST). Errors mean nothing may run.
 */
export function checkOperation(
  schema: GraphQLSchema,
  request: OperationRequest,
  extraRules: readonly ValidationRule[] = [],
  parseOptions: ParseOptions = {},
): CheckedOperation | GraphQLError[] {
  const { query, operationName, variables } = request;
  if (typeof query !== 'string' || query.trim() === '') {
    return [new GraphQLError('The request must contain a non-empty "query" string', { extensions: { code: 'BAD_REQUEST' } })];
  }
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    return [new GraphQLError('"operationName" must be a string', { extensions: { code: 'BAD_REQUEST' } })];
  }
  if (variables !== undefined && variables !== null && !isRecord(variables)) {
    return [new GraphQLError('"variables" must be an object', { extensions: { code: 'BAD_REQUEST' } })];
  }
  let document: DocumentNode;
  try {
    document = parse(query, parseOptions);
  } catch (err) {
    if (err instanceof GraphQLError) return coded('GRAPHQL_PARSE_FAILED', [err]);
    throw err;
  }
  // First on its own: graphql-js 16's single-root-field rule throws on a conditional root field
  // (it evaluates @skip/@include without variables) instead of reporting it.
  const conditional = validate(schema, document, [NoConditionalSubscriptionRootRule]);
  if (conditional.length > 0) return coded('GRAPHQL_VALIDATION_FAILED', conditional);
  let invalid: readonly GraphQLError[];
  try {
    invalid = validate(schema, document, [...specifiedRules, ...extraRules]);
  } catch (err) {
    if (!(err instanceof GraphQLError)) throw err;
    invalid = [err];
  }
  if (invalid.length > 0) return coded('GRAPHQL_VALIDATION_FAILED', invalid);
  const name = operationName ?? undefined;
  const operation = getOperationAST(document, name);
  if (!operation) {
    const message = name ? `Unknown operation named "${name}".` : 'Must provide operation name if query contains multiple operations.';
    return [new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })];
  }
  const values = variables ?? {};
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], values);
  if (coerced.errors) return coded('BAD_USER_INPUT', coerced.errors);
  return { query, document, operation, operationName: name, variables: values };
}

/**
 * Apollo Server would run a subscription sent as a plain HTTP request like a query (a subgraph:
 * the event resolver without an event) or fail deep in the gateway ("Execution of subscriptions
 * not supported"): both an internal error for what is a client mistake. This says where to go.
 */
export function subscriptionsOverHttpRejected<C extends BaseContext>(hint: string): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation === 'subscription') {
            throw new GraphQLError(`Subscriptions are not served over plain HTTP requests: ${hint}`, {
              extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The subgraphs' graphql-ws endpoint

export interface SubscriptionEndpointOptions<C extends RequestContext> {
  server: Server;
  schema: GraphQLSchema;
  createContext: (base: RequestContext) => C;
  /** The identity in a gateway identity token (header value); throws a coded GraphQLError (401) when invalid. */
  verifyIdentity: (headerValue: string | undefined) => Promise<RequestIdentity>;
  /** The subgraph's event source; none for a subgraph without an outbox (and so without subscription fields). */
  streams: EventStreams | undefined;
  /** The subgraph's HTTP error formatting (masking), applied to every error sent. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  logger: Logger;
  maxPayloadBytes: number;
}

/**
 * graphql-ws (graphql-transport-ws) on the same port as GraphQL over HTTP, at /graphql, for
 * subscriptions only (queries and mutations have one path: HTTP). Subscribers are gateways; they
 * send the client's request id in the Subscribe message's extensions.headers. Each event runs
 * with a fresh context. Logs "subscription opened"/"closed" with the count of open streams.
 * close() sends 1001 (going away) to every socket.
 */
export function serveSubscriptions<C extends RequestContext>(opts: SubscriptionEndpointOptions<C>): { close(timeoutMs: number): Promise<void> } {
  const { logger, streams, formatError } = opts;
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes });
  const onUpgrade = (req: Parameters<WebSocketServer['handleUpgrade']>[0], socket: Parameters<WebSocketServer['handleUpgrade']>[1], head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/graphql') return void socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  opts.server.on('upgrade', onUpgrade);

  const contextFor = (identity: RequestIdentity, requestId: string): C => {
    const context = opts.createContext(baseContext(identity, requestId, logger));
    if (streams) bindEventStreams(context, streams);
    return context;
  };
  // Per connection, the ids of the subscriptions that opened a stream (not refused ones).
  const streaming = new WeakMap<object, Set<string>>();
  const requestIdOf = (contextValue: unknown) => (contextValue as RequestContext).requestId;
  const ws = useServer(
    {
      onSubscribe: async (_ctx, _id, payload) => {
        let identity: RequestIdentity;
        try {
          identity = await opts.verifyIdentity(forwardedHeader(payload.extensions, IDENTITY_HEADER));
        } catch (err) {
          if (err instanceof GraphQLError) return [err];
          throw err;
        }
        const checked = checkOperation(opts.schema, payload);
        if (Array.isArray(checked)) return checked;
        if (checked.operation.operation !== 'subscription') {
          return [
            new GraphQLError('Only subscriptions are served over WebSocket; send queries and mutations over HTTP', { extensions: { code: 'BAD_REQUEST' } }),
          ];
        }
        const contextValue = contextFor(identity, forwardedRequestId(payload.extensions));
        return { schema: opts.schema, document: checked.document, operationName: checked.operationName, variableValues: checked.variables, contextValue };
      },
      subscribe: (args) => subscribeWithFreshContext(args, () => contextFor((args.contextValue as RequestContext).identity, requestIdOf(args.contextValue))),
      onOperation: (ctx, id, payload, args, result) => {
        const requestId = requestIdOf(args.contextValue);
        if (!(Symbol.asyncIterator in result)) return void logger.info({ id, operationName: payload.operationName, requestId }, 'subscription refused');
        let ids = streaming.get(ctx);
        if (!ids) streaming.set(ctx, (ids = new Set()));
        ids.add(id);
        logger.info({ id, operationName: payload.operationName, requestId, open: streams?.active ?? 0 }, 'subscription opened');
      },
      onComplete: (ctx, id, payload) => {
        if (!streaming.get(ctx)?.delete(id)) return;
        logger.info({ id, operationName: payload.operationName, open: streams?.active ?? 0 }, 'subscription closed');
      },
      onNext: (_ctx, _id, _payload, _args, result) => (result.errors ? { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e)) } : result),
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => formatError(e.toJSON(), e)),
    },
    wss,
  );
  return {
    async close(timeoutMs) {
      opts.server.off('upgrade', onUpgrade);
      // dispose() waits for every socket's closing handshake; a peer that never answers is cut.
      const timer = setTimeout(() => {
        for (const socket of wss.clients) socket.terminate();
      }, timeoutMs);
      timer.unref();
      await ws.dispose();
      clearTimeout(timer);
    },
  };
}

function forwardedHeader(extensions: Record<string, unknown> | undefined | null, name: string): string | undefined {
  const headers = extensions?.headers;
  const value = typeof headers === 'object' && headers !== null ? (headers as Record<string, unknown>)[name] : undefined;
  return typeof value === 'string' ? value : undefined;
}

function forwardedRequestId(extensions: Record<string, unknown> | undefined | null): string {
  const id = forwardedHeader(extensions, 'x-request-id');
  return id !== undefined && /^[\w.:-]{1,128}$/.test(id) ? id : randomUUID();
}
