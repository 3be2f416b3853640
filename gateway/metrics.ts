// The gateway's own series beside runtime/metrics.ts' common ones: operations as the executor
// runs them (every transport goes through it), subgraph fetches, auth failures and rate-limit
// denials, requests refused before execution, subscriptions and connections, dedup and prepared
// operation hits, and the breaker state per subgraph. Each instrumentation point is a wrapper
// here, so the modules it observes stay unaware of metrics.
import type { ApolloServerPlugin } from '@apollo/server';
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { GraphQLError, Kind, parse } from 'graphql';
import type { RequestInfo } from '../runtime/http.ts';
import {
  callbackCounter,
  callbackGauge,
  Counter,
  errorCodesOf,
  Histogram,
  LATENCY_BUCKETS,
  METRICS_PATH,
  secondsSince,
  type MetricsAccess,
  type ServiceMetrics,
} from '../runtime/metrics.ts';
import { AuthError } from './auth/principal.ts';
import type { Authenticator, GatewayContext } from './context.ts';
import { wrapExecutor } from './executor-wrapper.ts';
import type { SubgraphDataSource } from './subgraph-client.ts';

/** What the breaker of a subgraph says; a gateway without breakers reports every subgraph closed. */
export type BreakerState = 'closed' | 'half_open' | 'open';
const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface GatewayMetricSources {
  subgraphs: () => Iterable<string>;
  breakerState?: (subgraph: string) => BreakerState;
  subscriptions: () => { clientSubscriptions: number; upstreamSubscriptions: number; webSocketConnections: number; sseConnections: number };
  dedup?: () => { sent: number; joined: number };
  prepared: () => { hits: number; misses: number };
}

/** The operation names of GraphQL documents (REST routes', registered trusted documents'). */
export function operationNamesOf(documents: Iterable<string>): string[] {
  const names: string[] = [];
  for (const text of documents) {
    try {
      for (const definition of parse(text).definitions) {
        if (definition.kind === Kind.OPERATION_DEFINITION && definition.name) names.push(definition.name.value);
      }
    } catch {
      // A document that does not parse names nothing; the registry reports it elsewhere.
    }
  }
  return names;
}

export interface GatewayMetrics {
  /** The gateway with every execution timed and its errors counted. */
  wrap(gateway: GatewayInterface): GatewayInterface;
  /** Times every fetch of the data source and counts its failures by code. */
  observeFetches(source: SubgraphDataSource, subgraph: string): SubgraphDataSource;
  /** Counts failed authentications by reason and rate-limit denials by budget. */
  observeAuthenticator(authenticator: Authenticator): Authenticator;
  /** Counts requests refused before execution (limits, validation, trusted documents) by code. */
  plugin: ApolloServerPlugin<GatewayContext>;
  /** The subgraph-fetch retries of a resilient fetch path (gateway/upstream/*). */
  retries: Counter<'subgraph'>;
}

export function createGatewayMetrics(metrics: ServiceMetrics, sources: GatewayMetricSources): GatewayMetrics {
  const { registry, enabled } = metrics;
  const fetchDuration = new Histogram({
    name: 'gateway_subgraph_fetch_duration_seconds',
    help: 'Subgraph fetches by subgraph and outcome (ok, error)',
    labelNames: ['subgraph', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const fetchErrors = new Counter({
    name: 'gateway_subgraph_fetch_errors_total',
    help: 'Failed subgraph fetches (thrown: SUBGRAPH_UNAVAILABLE...) and GraphQL errors subgraphs answered, by subgraph and code',
    labelNames: ['subgraph', 'code'] as const,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'gateway_subgraph_retries_total',
    help: 'Subgraph fetches retried, by subgraph',
    labelNames: ['subgraph'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'gateway_auth_failures_total',
    help: 'Requests whose credentials were refused, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'gateway_rate_limit_denials_total',
    help: 'Requests and subscriptions refused for a spent rate-limit budget, by budget (http, subscription)',
    labelNames: ['budget'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'gateway_requests_refused_total',
    help: 'GraphQL requests refused before execution (query limits, validation, trusted documents...), by code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  callbackGauge(
    registry,
    { name: 'gateway_subgraph_breaker_state', help: 'Circuit breaker per subgraph: 0 closed, 1 half-open, 2 open', labelNames: ['subgraph'] as const },
    (set) => {
      for (const subgraph of sources.subgraphs()) set({ subgraph }, BREAKER_VALUE[sources.breakerState?.(subgraph) ?? 'closed']);
    },
  );
  callbackGauge(
    registry,
    { name: 'gateway_connections_active', help: 'Open client connections by transport (ws, sse)', labelNames: ['transport'] as const },
    (set) => {
      const stats = sources.subscriptions();
      set({ transport: 'ws' }, stats.webSocketConnections);
      set({ transport: 'sse' }, stats.sseConnections);
    },
  );
  callbackGauge(
    registry,
    { name: 'gateway_subscriptions_active', help: 'Open subscriptions: client (all transports) and upstream (to subgraphs)', labelNames: ['side'] as const },
    (set) => {
      const stats = sources.subscriptions();
      set({ side: 'client' }, stats.clientSubscriptions);
      set({ side: 'upstream' }, stats.upstreamSubscriptions);
    },
  );
  callbackCounter(
    registry,
    {
      name: 'gateway_dedup_requests_total',
      help: 'Subgraph queries sent (sent) or answered by an identical one in flight (joined)',
      labelNames: ['result'] as const,
    },
    (): Record<string, number> => {
      const stats = sources.dedup?.();
      return stats ? { sent: stats.sent, joined: stats.joined } : {};
    },
    'result',
  );
  callbackCounter(
    registry,
    {
      name: 'gateway_prepared_operations_total',
      help: 'Requests answered by the prepared-operation fast path (hit) or by the full pipeline (miss)',
      labelNames: ['result'] as const,
    },
    () => {
      const stats = sources.prepared();
      return { hit: stats.hits, miss: stats.misses };
    },
    'result',
  );

  const timed =
    (inner: GatewayExecutor): GatewayExecutor =>
    async (requestContext) => {
      const started = process.hrtime.bigint();
      const principal = (requestContext.context as unknown as GatewayContext).principal;
      const op = {
        type: requestContext.operation.operation,
        name: requestContext.operationName,
        tenant: principal && principal.kind !== 'anonymous' ? principal.tenantId : null,
      };
      try {
        const result = await inner(requestContext);
        metrics.observeOperation(op, secondsSince(started), errorCodesOf(result.errors));
        return result;
      } catch (err) {
        metrics.observeOperation(op, secondsSince(started), errorCodesOf([err instanceof GraphQLError ? err : {}]));
        throw err;
      }
    };

  return {
    retries,
    wrap: (gateway) => (enabled ? wrapExecutor(gateway, timed) : gateway),
    observeFetches(source, subgraph) {
      if (!enabled) return source;
      const inner = source.process.bind(source);
      // Bound once per subgraph: labels() validates its arguments and builds a closure on every call.
      const ok = fetchDuration.labels(subgraph, 'ok');
      const failed = fetchDuration.labels(subgraph, 'error');
      source.process = async (options) => {
        const started = process.hrtime.bigint();
        try {
          const response = await inner(options);
          const codes = errorCodesOf(response.errors as { extensions?: Record<string, unknown> }[] | undefined);
          (codes.length === 0 ? ok : failed).observe(secondsSince(started));
          for (const code of codes) fetchErrors.labels(subgraph, code).inc();
          return response;
        } catch (err) {
          failed.observe(secondsSince(started));
          fetchErrors.labels(subgraph, errorCodesOf([err instanceof GraphQLError ? err : {}])[0] ?? 'INTERNAL_SERVER_ERROR').inc();
          throw err;
        }
      };
      return source;
    },
    observeAuthenticator(authenticator) {
      if (!enabled) return authenticator;
      return {
        async authenticate(credentials, requestId) {
          try {
            return await authenticator.authenticate(credentials, requestId);
          } catch (err) {
            if (err instanceof AuthError) authFailures.labels(err.reason).inc();
            throw err;
          }
        },
        async admit(budget, principal, remoteAddress) {
          const admission = await authenticator.admit(budget, principal, remoteAddress);
          if (admission.refused) rateLimited.labels(budget).inc();
          return admission;
        },
      };
    },
    plugin: {
      async requestDidStart() {
        if (!enabled) return;
        return {
          async willSendResponse({ response }) {
            if (response.body.kind !== 'single') return;
            const result = response.body.singleResult;
            // No data at all: the request never reached the executor.
            if (!result.errors || 'data' in result) return;
            for (const code of errorCodesOf(result.errors)) refused.labels(code).inc();
          },
        };
      },
    },
  };
}

/**
 * In production, /metrics on the gateway port is also open to the admin scope (as
 * /debug/subscriptions is), with the credentials of any other request.
 */
export function adminMetricsAccess(context: (info: RequestInfo) => Promise<GatewayContext>): (info: RequestInfo) => Promise<MetricsAccess> {
  return async (info) => {
    let principal: GatewayContext['principal'];
    try {
      ({ principal } = await context(info));
    } catch (err) {
      if (!(err instanceof GraphQLError)) throw err;
      const status = (err.extensions.http as { status?: number } | undefined)?.status ?? 401;
      return { status, code: String(err.extensions.code ?? 'UNAUTHENTICATED'), message: err.message };
    }
    if (principal.kind === 'anonymous')
      return { status: 401, code: 'UNAUTHENTICATED', message: `${METRICS_PATH} needs credentials with the admin scope, or METRICS_TOKEN` };
    if (!principal.scopes.includes('admin')) return { status: 403, code: 'FORBIDDEN', message: `${METRICS_PATH} needs the admin scope` };
    return 'allowed';
  };
}
