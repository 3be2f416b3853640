// Federated subscriptions for the gateway: the transport-neutral core (execute.ts) served over
// graphql-ws on /graphql and over SSE on /graphql/stream, plus a read-only counter route.
import type { Server } from 'node:http';
import type { ApolloGateway, GraphQLDataSource } from '@apollo/gateway';
import type { GraphQLRequest, GraphQLResponse } from '@apollo/server';
import type { ParseOptions, ValidationRule } from 'graphql';
import type { IdentityService } from '../../runtime/identity.ts';
import type { AccessPolicy } from '../auth/supergraph-policy.ts';
import type { RequestInfo, Route } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { GatewayConfig } from '../config.ts';
import type { Authenticator, GatewayContext } from '../context.ts';
import { formatGatewayError } from '../errors.ts';
import type { SubscriptionConfig } from './config.ts';
import { GatewayOperations, type CoreOptions, type SubscriptionStats } from './execute.ts';
import { Planning } from './planning.ts';
import { createSseTransport } from './sse.ts';
import { statsRoute } from './stats-route.ts';
import { UpstreamSubscriptions } from './upstream.ts';
import { createWebSocketTransport } from './ws.ts';

export { loadSubscriptionConfig, type SubscriptionConfig } from './config.ts';
export type { SubscriptionStats } from './execute.ts';

export const SSE_PATH = '/graphql/stream';

export interface GatewaySubscriptionStats extends SubscriptionStats {
  webSocketConnections: number;
  sseConnections: number;
}

export interface GatewaySubscriptions {
  /** SSE and the counters; the gateway adds them to its routes. */
  routes: Route[];
  /** Starts answering WebSocket upgrades on /graphql. */
  attach(server: Server): void;
  stats(): GatewaySubscriptionStats;
  /** WebSockets closed with 1001, SSE streams ended with SHUTTING_DOWN, upstream connections closed. */
  close(timeoutMs: number): Promise<void>;
}

export interface GatewaySubscriptionOptions {
  gateway: ApolloGateway;
  /** Queries and mutations over graphql-ws and SSE: the same execution as GraphQL over HTTP. */
  execute(request: GraphQLRequest, contextValue: GatewayContext): Promise<GraphQLResponse>;
  dataSources: ReadonlyMap<string, GraphQLDataSource<GatewayContext>>;
  /** The context every gateway transport builds its requests with. */
  context: (info: RequestInfo) => Promise<GatewayContext>;
  config: GatewayConfig;
  subscriptionConfig: SubscriptionConfig;
  /**
   * Validation rules the gateway adds to graphql-js's (Apollo Server's validationRules): queries
   * and mutations over the socket get them from Apollo, subscriptions from here.
   */
  validationRules?: readonly ValidationRule[];
  /** Apollo Server's parse options (the token limit), for subscriptions too. */
  parseOptions?: ParseOptions;
  /** Checks graphql-ws connections' credentials and counts subscription starts. */
  authenticator: Authenticator;
  /** The access rules of the supergraph served now. */
  policy: () => AccessPolicy | undefined;
  /** Trusted documents: checks (and resolves ids of) every operation before it is parsed. */
  admitDocument?: CoreOptions['admitDocument'];
  identity: IdentityService;
  /** Client addresses from X-Forwarded-For (TRUST_PROXY). */
  trustProxy?: boolean;
  /** Admission control's state: while true, new graphql-ws connections and operations are refused. */
  overloaded?: () => boolean;
  logger: Logger;
}

export function createGatewaySubscriptions(options: GatewaySubscriptionOptions): GatewaySubscriptions {
  const { config, subscriptionConfig: sub, logger } = options;
  const core = new GatewayOperations({
    execute: options.execute,
    planning: new Planning(options.gateway),
    dataSources: options.dataSources,
    forwardHeaders: config.FORWARD_HEADERS,
    queueLimit: sub.SUBSCRIPTION_QUEUE_LIMIT,
    perSubjectSubgraphs: new Set(
      sub.SUBSCRIPTION_PER_SUBJECT_SUBGRAPHS.split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    ),
    validationRules: options.validationRules ?? [],
    ...(options.parseOptions ? { parseOptions: options.parseOptions } : {}),
    policy: options.policy,
    ...(options.admitDocument ? { admitDocument: options.admitDocument } : {}),
    admitSubscription: async (context) => (await options.authenticator.admit('subscription', context.principal, context.remoteAddress)).refused,
    identity: options.identity,
    upstream: new UpstreamSubscriptions({ keepAliveMs: sub.SUBSCRIPTION_KEEPALIVE_MS, timeoutMs: config.SUBGRAPH_TIMEOUT_MS, logger }),
    format: formatGatewayError(logger),
    logger,
  });
  const ws = createWebSocketTransport(core, {
    path: '/graphql',
    keepAliveMs: sub.SUBSCRIPTION_KEEPALIVE_MS,
    maxBufferedBytes: sub.SUBSCRIPTION_MAX_BUFFERED_BYTES,
    maxPayloadBytes: config.MAX_BODY_BYTES,
    authenticator: options.authenticator,
    trustProxy: options.trustProxy ?? false,
    overloaded: options.overloaded ?? (() => false),
    logger,
  });
  const sse = createSseTransport(core, {
    path: SSE_PATH,
    maxBodyBytes: config.MAX_BODY_BYTES,
    maxBufferedBytes: sub.SUBSCRIPTION_MAX_BUFFERED_BYTES,
    context: options.context,
    logger,
  });
  const stats = (): GatewaySubscriptionStats => ({ ...core.stats(), webSocketConnections: ws.connections, sseConnections: sse.connections });
  return {
    routes: [sse.route, statsRoute(stats, options.context)],
    attach: (server) => ws.attach(server),
    stats,
    async close(timeoutMs) {
      await ws.close(timeoutMs);
      await core.close();
    },
  };
}
