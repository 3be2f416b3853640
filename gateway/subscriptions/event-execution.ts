// One subscription event, resolved like a query: the gateway's executeQueryPlan runs the plan's
// primary fetch (answered with the event the subgraph pushed) and then the fetches for the fields
// other subgraphs own, through the gateway's real data sources (keep-alive pool, forwarded
// headers, timeouts, errors naming the subgraph). A fetch that fails gives that event partial
// data and errors, as a query would; the subscription goes on.
import { buildOperationContext, executeQueryPlan, type GraphQLDataSource, type GraphQLDataSourceProcessOptions, type ServiceMap } from '@apollo/gateway';
import type { GatewayGraphQLRequestContext, GatewayGraphQLResponse, GatewaySchemaHash } from '@apollo/server-gateway-interface';
import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { FormattedExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import type { CheckedOperation } from '../../runtime/subscriptions.ts';
import type { GatewayContext } from '../context.ts';
import type { SubscriptionPlan, Supergraph } from './planning.ts';
import { tracedSubscriptionEvent } from '../tracing.ts';

export type ErrorFormatter = (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;

/**
 * Answers the plan's primary fetch with the event the subgraph pushed, once; any other fetch to
 * the same subgraph (an entity fetch later in the plan) goes to its real data source.
 */
class ReplayedEvent implements GraphQLDataSource<GatewayContext> {
  private replayed = false;

  constructor(
    private readonly operation: string,
    private readonly event: GatewayGraphQLResponse,
    private readonly live: GraphQLDataSource<GatewayContext> | undefined,
  ) {}

  async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    if (!this.replayed && options.request.query === this.operation) {
      this.replayed = true;
      return this.event;
    }
    if (!this.live) throw new Error('no data source for the subgraph that owns this subscription');
    return this.live.process(options);
  }
}

// executeQueryPlan wants a cache in its request context; nothing on this path reads it.
const noCache: KeyValueCache = {
  get: async () => undefined,
  set: async () => {},
  delete: async () => true,
};

export interface EventExecutorOptions {
  supergraph: Supergraph;
  plan: SubscriptionPlan;
  operation: CheckedOperation;
  /** Whose request the shared subscription runs as (headers, request id, logger). */
  context: GatewayContext;
  /** The gateway's data sources by subgraph name, as they are when the event arrives. */
  dataSources: () => ReadonlyMap<string, GraphQLDataSource<GatewayContext>>;
  format: ErrorFormatter;
}

/** Returns the function that turns one upstream event into the client's result. */
export function eventExecutor(options: EventExecutorOptions): (event: FormattedExecutionResult) => Promise<FormattedExecutionResult> {
  const { supergraph, plan, operation, context, format } = options;
  const operationContext = buildOperationContext({
    schema: supergraph.apiSchema,
    operationDocument: operation.document,
    operationName: operation.operationName,
  });
  const serviceName = plan.primary.serviceName;

  return (event) => tracedSubscriptionEvent(serviceName, event, () => executeEvent(event));

  async function executeEvent(event: FormattedExecutionResult): Promise<FormattedExecutionResult> {
    const serviceMap: ServiceMap = {};
    for (const [name, source] of options.dataSources()) serviceMap[name] = source;
    const response: GatewayGraphQLResponse = { data: event.data ?? null, ...(event.errors ? { errors: event.errors } : {}) };
    serviceMap[serviceName] = new ReplayedEvent(plan.primary.operation, response, options.dataSources().get(serviceName));
    // A new request context per event: executeQueryPlan records per-request metrics in it.
    const requestContext: GatewayGraphQLRequestContext<GatewayContext> = {
      request: { query: operation.query, operationName: operation.operationName, variables: operation.variables },
      logger: context.logger,
      schema: supergraph.apiSchema,
      schemaHash: String(supergraph.id) as GatewaySchemaHash,
      context,
      cache: noCache,
      queryHash: '',
      document: operation.document,
      source: operation.query,
      operationName: operation.operationName ?? null,
      operation: operation.operation,
      metrics: {},
      overallCachePolicy: undefined,
    };
    const result = await executeQueryPlan(
      plan.perEvent,
      serviceMap,
      requestContext as GatewayGraphQLRequestContext,
      operationContext,
      supergraph.supergraphSchema,
      supergraph.apiSchemaInternal,
    );
    return formatResult(result.data, result.errors, format);
  }
}

export function formatResult(
  data: Record<string, unknown> | null | undefined,
  errors: readonly GraphQLError[] | undefined,
  format: ErrorFormatter,
): FormattedExecutionResult {
  const formatted: FormattedExecutionResult = { data: data ?? null };
  if (errors && errors.length > 0) formatted.errors = errors.map((e) => format(e.toJSON(), e));
  return formatted;
}
