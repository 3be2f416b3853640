// The transport-neutral core behind graphql-ws and SSE: checks an operation against the served
// API schema, then runs queries and mutations through Apollo Server (the same path as HTTP) and
// subscriptions as federated streams (planned by the gateway's query planner, subscribed upstream
// over graphql-ws, each event resolved across subgraphs). It knows no transport: adapters turn
// its outcomes into their messages.
import type { GraphQLDataSource } from '@apollo/gateway';
import type { ApolloServer } from '@apollo/server';
import { GraphQLError, type FormattedExecutionResult, type GraphQLFormattedError, type ValidationRule } from 'graphql';
import type { Logger } from '../../runtime/logger.ts';
import { checkOperation, EventQueue, type CheckedOperation, type OperationRequest } from '../../runtime/subscriptions.ts';
import type { GatewayContext } from '../context.ts';
import { eventExecutor, type ErrorFormatter } from './event-execution.ts';
import { Planning, SupergraphNotLoadedError, type SubscriptionPlan, type Supergraph } from './planning.ts';
import { SharedStream } from './shared-stream.ts';
import { UpstreamSubscriptions } from './upstream.ts';

export interface PreparedOperation {
  operation: CheckedOperation;
  supergraph: Supergraph;
  /** Subscriptions only. */
  plan?: SubscriptionPlan;
}

export type OperationOutcome =
  | { kind: 'single'; result: FormattedExecutionResult }
  | { kind: 'stream'; stream: AsyncGenerator<FormattedExecutionResult, undefined, unknown> };

export interface RunHooks {
  /** The client fell more than the queue limit behind; the adapter drops its connection. */
  onOverflow(): void;
}

export interface SubscriptionStats {
  /** Client subscriptions open across all transports. */
  clientSubscriptions: number;
  /** Distinct upstream streams those share (identical operations are deduplicated). */
  sharedStreams: number;
  /** Subscriptions open from the gateway to the subgraphs. */
  upstreamSubscriptions: number;
}

export interface CoreOptions {
  apollo: ApolloServer<GatewayContext>;
  planning: Planning;
  /** The gateway's data sources by subgraph name (kept current by buildService). */
  dataSources: ReadonlyMap<string, GraphQLDataSource<GatewayContext>>;
  /** Client headers the gateway forwards to subgraphs (FORWARD_HEADERS). */
  forwardHeaders: readonly string[];
  queueLimit: number;
  /** Validation rules beyond graphql-js's; give the ones Apollo Server gets (limits...), so subscriptions obey them too. */
  validationRules: readonly ValidationRule[];
  upstream: UpstreamSubscriptions;
  format: ErrorFormatter;
  logger: Logger;
}

// Per-request tracing headers: forwarded, but they do not change what a subscription delivers,
// so clients differing only in them share one stream.
const PER_REQUEST_HEADERS = new Set(['x-request-id', 'traceparent', 'tracestate']);

const SHUTTING_DOWN: GraphQLFormattedError = { message: 'The gateway is shutting down; subscribe again', extensions: { code: 'SHUTTING_DOWN' } };

/** JSON with object keys sorted, so equal variables give equal keys. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export class GatewayOperations {
  private readonly streams = new Map<string, SharedStream>();
  private clients = 0;
  private closed = false;

  constructor(private readonly options: CoreOptions) {}

  /** Errors (GraphQLError, unformatted) mean the operation must not run: a protocol-level refusal. */
  prepare(request: OperationRequest): PreparedOperation | GraphQLError[] {
    let supergraph: Supergraph;
    try {
      supergraph = this.options.planning.current();
    } catch (err) {
      if (!(err instanceof SupergraphNotLoadedError)) throw err;
      return [new GraphQLError('The gateway is starting: no supergraph is loaded yet', { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
    }
    const operation = checkOperation(supergraph.apiSchema, request, this.options.validationRules);
    if (Array.isArray(operation)) return operation;
    if (operation.operation.operation !== 'subscription') return { operation, supergraph };
    try {
      return { operation, supergraph, plan: supergraph.plan(operation.document, operation.query, operation.operationName) };
    } catch (err) {
      // A valid operation the planner cannot plan is a bug, masked and logged by format().
      return [new GraphQLError(`Could not plan the subscription: ${(err as Error).message}`, { originalError: err as Error })];
    }
  }

  formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
    return errors.map((e) => this.options.format(e.toJSON(), e));
  }

  async run(prepared: PreparedOperation, context: GatewayContext, hooks: RunHooks): Promise<OperationOutcome> {
    if (this.closed) return { kind: 'single', result: { errors: [SHUTTING_DOWN] } };
    if (!prepared.plan) return { kind: 'single', result: await this.execute(prepared.operation, context) };
    return { kind: 'stream', stream: this.subscribe(prepared as Required<PreparedOperation>, context, hooks) };
  }

  stats(): SubscriptionStats {
    return { clientSubscriptions: this.clients, sharedStreams: this.streams.size, upstreamSubscriptions: this.options.upstream.active };
  }

  /** Ends every subscription with a SHUTTING_DOWN error and closes the upstream connections. */
  async close(): Promise<void> {
    this.closed = true;
    for (const stream of [...this.streams.values()]) stream.end({ errors: [SHUTTING_DOWN] });
    await this.options.upstream.close();
  }

  private async execute(operation: CheckedOperation, context: GatewayContext): Promise<FormattedExecutionResult> {
    const response = await this.options.apollo.executeOperation(
      { query: operation.query, operationName: operation.operationName, variables: operation.variables },
      { contextValue: context },
    );
    if (response.body.kind === 'single') return response.body.singleResult;
    return { errors: [{ message: 'Incremental delivery (@defer, @stream) is not supported here', extensions: { code: 'BAD_REQUEST' } }] };
  }

  private subscribe(prepared: Required<PreparedOperation>, context: GatewayContext, hooks: RunHooks): EventQueue<FormattedExecutionResult> {
    const key = this.streamKey(prepared, context);
    let stream: SharedStream | undefined;
    this.clients += 1;
    const queue = new EventQueue<FormattedExecutionResult>({
      limit: this.options.queueLimit,
      // The adapter closes the client's connection; an error message would queue behind the backlog.
      overflow: 'end',
      onOverflow: () => {
        context.logger.warn({ limit: this.options.queueLimit, operationName: prepared.operation.operationName }, 'subscriber fell behind; dropping it');
        hooks.onOverflow();
      },
      onClose: () => {
        this.clients -= 1;
        stream?.leave(queue);
      },
    });
    stream = this.streams.get(key);
    if (!stream || !stream.join(queue)) {
      stream = this.createStream(key, prepared, context);
      this.streams.set(key, stream);
      stream.join(queue);
    }
    return queue;
  }

  private createStream(key: string, prepared: Required<PreparedOperation>, context: GatewayContext): SharedStream {
    const { plan, supergraph, operation } = prepared;
    const { primary } = plan;
    const source = this.options.dataSources.get(primary.serviceName);
    const url = source && 'url' in source && typeof source.url === 'string' ? source.url : undefined;
    const variables: Record<string, unknown> = {};
    for (const name of primary.variableUsages ?? []) {
      if (operation.variables[name] !== undefined) variables[name] = operation.variables[name];
    }
    const stream: SharedStream = new SharedStream({
      subgraph: { name: primary.serviceName, url: url ?? '' },
      request: { query: primary.operation, operationName: primary.operationName, variables, extensions: { headers: this.forwardedHeaders(context) } },
      execute: eventExecutor({ supergraph, plan, operation, context, dataSources: () => this.options.dataSources, format: this.options.format }),
      upstream: this.options.upstream,
      format: this.options.format,
      onFinished: () => {
        if (this.streams.get(key) === stream) this.streams.delete(key);
      },
      logger: context.logger,
    });
    return stream;
  }

  private forwardedHeaders(context: GatewayContext): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const name of this.options.forwardHeaders) {
      const value = context.headers.get(name);
      if (value !== undefined) headers[name] = value;
    }
    headers['x-request-id'] = context.requestId;
    return headers;
  }

  private streamKey(prepared: Required<PreparedOperation>, context: GatewayContext): string {
    const headers = this.options.forwardHeaders.filter((h) => !PER_REQUEST_HEADERS.has(h)).map((h) => [h, context.headers.get(h) ?? null]);
    const { operation } = prepared;
    return canonical([prepared.supergraph.id, operation.operationName ?? null, operation.query, operation.variables, headers]);
  }
}
