import type { Server } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, HeaderMap, type GraphQLRequest } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { startHttpServer, type RequestInfo, type Route, type RunningHttpServer } from '../runtime/http.ts';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { ConfigError } from '../runtime/config.ts';
import { createIdentityService, loadIdentityConfig } from '../runtime/identity.ts';
import { loadTracingConfig, startTracing } from '../runtime/tracing.ts';
import { createAdmission, loadAdmissionConfig } from './admission/index.ts';
import { graphqlTracingPlugins } from '../runtime/graphql-tracing.ts';
import { createApiKeyVerifier } from './auth/api-keys.ts';
import { loadAuthConfig } from './auth/config.ts';
import { createJwtVerifier } from './auth/jwt.ts';
import { withAccessControl } from './auth/secured-gateway.ts';
import { extractAccessPolicy, type AccessPolicy } from './auth/supergraph-policy.ts';
import { loadGatewayConfig, subgraphTimeoutVariable, subgraphUrlVariable, type GatewayConfig } from './config.ts';
import { contextFor, createAuthenticator, createGatewayContext, rateLimitHeadersPlugin, type GatewayContext } from './context.ts';
import { ANONYMOUS } from './auth/principal.ts';
import { probeQuery, runSelfCheck } from './self-check.ts';
import { apolloLimits, limitRules, parseOptions } from './limits/armor.ts';
import { loadLimitsConfig } from './limits/config.ts';
import { createRateLimiter } from './limits/rate-limit.ts';
import { mintDevToken } from './auth/dev-token.ts';
import { createDocsRoute } from './docs/index.ts';
import { hooksProxyRoute } from './hooks-proxy.ts';
import { formatGatewayError } from './errors.ts';
import { createRestFacade } from './rest/index.ts';
import { loadOperations } from './rest/operations.ts';
import { problem, PROBLEM_CONTENT_TYPE } from './rest/problem.ts';
import { createSubgraphAgent, SubgraphDataSource, type RawResponse } from './subgraph-client.ts';
import { createDedup } from './dedup.ts';
import { describeState, Upstreams } from './upstream/index.ts';
import { replicaProbe } from './upstream/probe.ts';
import { operationResolutionPlugin } from './operation-resolution.ts';
import { withVariableCoercion } from './variable-coercion.ts';
import { withNulCharacterRefusal } from './nul-character-refusal.ts';
import { createPreparedOperations, type PreparedOperations } from './prepared-operations.ts';
import { readSupergraph, watchedSupergraph } from './supergraph.ts';
import { createServiceMetrics, loadMetricsConfig, METRICS_PATH, metricsAccess, metricsRoute, startMetricsListener } from '../runtime/metrics.ts';
import { adminMetricsAccess, createGatewayMetrics, operationNamesOf } from './metrics.ts';
import { subscriptionsOverHttpRejected } from '../runtime/subscriptions.ts';
import { createGatewaySubscriptions, loadSubscriptionConfig, SSE_PATH, type GatewaySubscriptions } from './subscriptions/index.ts';
import { STATS_PATH } from './subscriptions/stats-route.ts';
import { loadTrustedDocuments, resolveTrustedDocument, subscriptionDocumentGate, trustedDocumentsPlugin } from './trusted-documents/index.ts';

export interface RunningGateway {
  url: string;
  port: number;
  /** The probes' own port (HEALTH_PORT), when set. */
  healthPort?: number;
  /** For transports added later (WebSocket upgrades, SSE) that share the port. */
  server: Server;
  /** The execution core: later transports (subscriptions, REST) run operations through it. */
  apollo: ApolloServer<GatewayContext>;
  gateway: ApolloGateway;
  config: GatewayConfig;
  logger: Logger;
  /** graphql-ws on /graphql and SSE on /graphql/stream; stats() counts open subscriptions. */
  subscriptions: GatewaySubscriptions;
  /** The fast path for documents Apollo Server has executed before; stats() counts its use. */
  prepared: PreparedOperations;
  /** The way to each subgraph: states() shows breakers and replicas (read by /readyz; for metrics too). */
  upstreams: Upstreams;
  stop(): Promise<void>;
}

/** Every configuration problem of the gateway at once, as one ConfigError. */
function loadAll(source: Record<string, string | undefined>) {
  const problems: string[] = [];
  function attempt<T>(load: () => T): T | undefined {
    try {
      return load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return undefined;
    }
  }
  const config = attempt(() => loadGatewayConfig(source));
  const subscriptionConfig = attempt(() => loadSubscriptionConfig(source));
  const auth = attempt(() => loadAuthConfig(source));
  const identity = attempt(() => loadIdentityConfig(source));
  const limits = attempt(() => loadLimitsConfig(source));
  const metrics = attempt(() => loadMetricsConfig(source));
  // The REST routes' documents are always trusted: the facade only ever sends those texts.
  const trustedDocuments = attempt(() => loadTrustedDocuments(source, () => loadOperations().routes.map((route) => route.document)));
  const tracingConfig = attempt(() => loadTracingConfig(source));
  const admission = attempt(() => loadAdmissionConfig(source));
  if (problems.length > 0 || !config || !subscriptionConfig || !auth || !identity || !limits || !trustedDocuments || !metrics || !tracingConfig || !admission)
    throw new ConfigError([...new Set(problems)]);
  return { config, subscriptionConfig, auth, identity, limits, trustedDocuments, metrics, tracingConfig, admission };
}

/**
 * Starts the gateway: the supergraph from SUPERGRAPH_PATH (reloaded when the file changes),
 * subgraphs reached at their routing URLs or SUBGRAPH_<NAME>_URL, served over runtime/http.ts.
 * Throws ConfigError for bad variables and SupergraphFileError for a missing or invalid file.
 */
export async function startGateway(source: Record<string, string | undefined> = process.env): Promise<RunningGateway> {
  const {
    config,
    subscriptionConfig,
    auth: authConfig,
    identity: identityConfig,
    limits,
    trustedDocuments,
    metrics: metricsConfig,
    tracingConfig,
    admission: admissionConfig,
  } = loadAll(source);
  const production = config.NODE_ENV === 'production';
  const identity = createIdentityService(identityConfig);
  // One for all subgraph clients: a mutation to any subgraph starts a new epoch for all of them.
  const dedup = createDedup<RawResponse>(source);
  const logger = createLogger('gateway', config.LOG_LEVEL);
  // Before Apollo Server is built: its tracing plugins exist only when tracing is on.
  const tracing = await startTracing('gateway', tracingConfig);
  if (trustedDocuments.registry.mode !== 'off') logger.info(trustedDocuments.summary, 'trusted documents');
  const initialSdl = await readSupergraph(config.SUPERGRAPH_PATH);
  const rateLimiter = createRateLimiter(limits.rateLimit, logger);
  await rateLimiter.ready().catch((err: unknown) => logger.warn({ err }, 'rate limiter: Redis not ready; counting per replica until it is'));
  let governanceUrl = config.subgraphUrls[subgraphUrlVariable('governance')];

  const agent = createSubgraphAgent();
  const upstreams = new Upstreams();
  const routed = new Set<string>();
  // The subscription executor runs per-event fetches through these same data sources.
  const dataSources = new Map<string, SubgraphDataSource>();
  // Metrics (gateway/metrics.ts): its sources are read at scrape time, once everything below exists.
  const metrics = createServiceMetrics('gateway', metricsConfig);
  for (const path of [SSE_PATH, STATS_PATH, '/openapi.json', '/openapi.yaml', '/docs', '/redoc']) metrics.paths.add(path);
  metrics.operationNames.add(operationNamesOf([...loadOperations().routes.map((route) => route.document), ...trustedDocuments.registry.byBody.keys()]));
  const observed = createGatewayMetrics(metrics, {
    subgraphs: () => dataSources.keys(),
    subscriptions: () => subscriptions.stats(),
    dedup: dedup ? () => dedup.stats() : undefined,
    prepared: () => prepared.stats(),
    breakerState: (subgraph) => {
      const state = upstreams.get(subgraph)?.state().breaker ?? 'closed';
      return state === 'half-open' ? 'half_open' : state;
    },
  });
  const gateway = new ApolloGateway({
    supergraphSdl: watchedSupergraph({
      path: config.SUPERGRAPH_PATH,
      initialSdl,
      watch: config.SUPERGRAPH_WATCH,
      pollMs: config.SUPERGRAPH_POLL_MS,
      logger,
    }),
    // Called for each subgraph on load, and again on a reload for subgraphs that are new or moved.
    buildService: ({ name, url }) => {
      const variable = subgraphUrlVariable(name);
      const override = config.subgraphReplicas[variable];
      const targets = override ?? (url ? [url] : []);
      const target = targets[0];
      if (!target) throw new Error(`subgraph "${name}" has no routing URL in the supergraph; set ${variable}`);
      routed.add(variable);
      if (name === 'governance') governanceUrl = target;
      logger.info({ subgraph: name, url: target, replicas: targets, from: override ? variable : 'supergraph' }, 'subgraph route');
      const timeoutMs = config.subgraphTimeouts[subgraphTimeoutVariable(name)] ?? config.SUBGRAPH_TIMEOUT_MS;
      const upstream = upstreams.define({
        name,
        urls: targets,
        timeoutMs,
        retries: config.SUBGRAPH_RETRIES,
        retryDelayMs: config.SUBGRAPH_RETRY_DELAY_MS,
        breakerFailures: config.SUBGRAPH_BREAKER_FAILURES,
        breakerHalfOpenMs: config.SUBGRAPH_BREAKER_HALF_OPEN_MS,
        maxConcurrency: config.SUBGRAPH_MAX_CONCURRENCY,
        maxQueued: config.SUBGRAPH_MAX_QUEUED,
        balancing: config.SUBGRAPH_BALANCING,
        ejectAfter: config.SUBGRAPH_EJECT_FAILURES,
        probeMs: config.SUBGRAPH_PROBE_MS,
        probe: replicaProbe({ subgraph: name, dispatcher: agent, identity, timeoutMs }),
        onRetry: () => observed.retries.inc({ subgraph: name }),
        logger,
      });
      const source = new SubgraphDataSource({
        name,
        url: target,
        upstream,
        dispatcher: agent,
        timeoutMs,
        maxResponseBytes: config.SUBGRAPH_MAX_RESPONSE_BYTES,
        forwardHeaders: config.FORWARD_HEADERS,
        dedup,
        identity,
        logger,
      });
      dataSources.set(name, observed.observeFetches(source, name));
      return source;
    },
    logger,
  });
  let loaded = false;
  // The access rules of the supergraph served now, for the transports that authorize outside
  // Apollo's executor (subscriptions); withAccessControl keeps its own copy for everything else.
  let policy: AccessPolicy | undefined;
  gateway.onSchemaLoadOrUpdate(({ coreSupergraphSdl }) => {
    loaded = true;
    policy = extractAccessPolicy(coreSupergraphSdl);
  });

  // Repeats of a document Apollo Server executed skip its request pipeline (gateway/prepared-operations.ts).
  const prepared = createPreparedOperations({
    max: config.PREPARED_OPERATIONS_MAX,
    // With TRUSTED_DOCUMENTS=log, each use of an unregistered document is logged by its plugin.
    admits: (query) => trustedDocuments.registry.mode === 'off' || !(resolveTrustedDocument(trustedDocuments.registry, { query }) instanceof Error),
    logger,
  });
  const apollo = new ApolloServer<GatewayContext>({
    // Bad variables first, then NUL characters in strings (request errors for every caller), then
    // field-level access control (@authenticated, @requiresScopes) before every execution.
    gateway: prepared.wrap(
      observed.wrap(
        withVariableCoercion(
          withNulCharacterRefusal(withAccessControl(gateway, { principalOf: (context) => (context as unknown as GatewayContext).principal })),
        ),
      ),
    ),
    ...apolloLimits(limits.query, { production }),
    introspection: config.INTROSPECTION ?? !production,
    csrfPrevention: true,
    includeStacktraceInErrorResponses: false,
    formatError: formatGatewayError(logger),
    // Compact JSON: Apollo's default pretty-prints every response, a few % of the gateway's CPU (bench/README.md).
    stringifyResult: (value) => JSON.stringify(value),
    plugins: [
      // operationName naming no operation of the document: 400, before the access rules and the planner.
      operationResolutionPlugin<GatewayContext>(),
      subscriptionsOverHttpRejected<GatewayContext>(`subscribe over graphql-ws (graphql-transport-ws) on this same URL, or over SSE at ${SSE_PATH}`),
      // Browsers get the local GraphiQL (gateway/docs); Apollo's landing page loads Sandbox from a CDN.
      ApolloServerPluginLandingPageDisabled(),
      rateLimitHeadersPlugin(),
      // TRUSTED_DOCUMENTS: unregistered documents are refused (or logged) before they are parsed.
      ...(trustedDocuments.registry.mode === 'off' ? [] : [trustedDocumentsPlugin(trustedDocuments.registry)]),
      prepared.plugin,
      ...graphqlTracingPlugins<GatewayContext>(),
      observed.plugin,
    ],
    // stopOnSignals (main.ts) owns shutdown: Apollo's own handler would stop the server and
    // re-raise the signal before in-flight HTTP requests had finished.
    stopOnTerminationSignals: false,
    logger,
  });
  try {
    await apollo.start();
    // Refuses to start when an @apollo internal the gateway relies on changed (gateway/self-check.ts).
    // With trusted documents on, the probe is a registered one: enforce refuses others, log would log it.
    const probe = probeQuery(trustedDocuments.registry.mode === 'off' ? null : trustedDocuments.registry.byBody.keys());
    if (probe === undefined) logger.warn('self-check: no registered query without variables to probe prepared operations with; that check is skipped');
    const probeContext = contextFor({ requestId: 'self-check', headers: new HeaderMap(), remoteAddress: '127.0.0.1' }, logger, ANONYMOUS);
    await runSelfCheck({ apollo, gateway, prepared, probe, context: probeContext });
  } catch (err) {
    await apollo.stop().catch(() => {});
    upstreams.close();
    await agent.close();
    await rateLimiter.close();
    throw err;
  }
  for (const variable of Object.keys(config.subgraphUrls)) {
    if (!routed.has(variable)) logger.warn({ variable }, `${variable} names no subgraph of the supergraph; ignored`);
  }

  // Transports beyond GraphQL over HTTP POST/GET (REST facade, docs, SSE) are thin adapters over
  // the same core (`apollo` and `gateway`); each registers its routes here.
  const routes: Route[] = [];
  // API keys are checked by the governance subgraph, wherever the supergraph served now routes it.
  const apiKeys = createApiKeyVerifier({
    // The first healthy replica of governance, when it has several.
    url: () => upstreams.get('governance')?.preferredUrl() ?? governanceUrl,
    identity,
    timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
    cacheMs: config.API_KEY_CACHE_MS,
    logger,
  });
  if (!governanceUrl) logger.warn('no governance subgraph routed: API keys cannot be checked (answered 503)');
  const authenticator = observed.observeAuthenticator(createAuthenticator({ jwt: createJwtVerifier(authConfig), apiKeys, rateLimiter }));
  // One context factory for every transport, so REST requests run exactly like GraphQL ones.
  const requestContext = async (info: RequestInfo) => createGatewayContext(info, logger, authenticator);
  // Every transport executes through the same core: Apollo Server, or prepared operations for repeats.
  const executeOperation = (request: GraphQLRequest, contextValue: GatewayContext) => prepared.executeOperation(apollo, request, contextValue);
  // REST facade (/v1/..., /openapi.json) and docs (/docs, /redoc, GraphiQL on GET /graphql in a browser).
  const rest = createRestFacade({
    execute: executeOperation,
    gateway,
    logger,
    maxBodyBytes: config.MAX_BODY_BYTES,
    context: requestContext,
  });
  // Inbound webhooks go to the integrations subgraph as they came (gateway/hooks-proxy.ts).
  routes.push(
    hooksProxyRoute({
      subgraphUrl: () => upstreams.get('integrations')?.preferredUrl(),
      maxBodyBytes: config.MAX_BODY_BYTES,
      timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
      logger,
    }),
  );
  routes.push(
    createDocsRoute({
      graphiql: config.GRAPHIQL ?? !production,
      ssePath: SSE_PATH,
      // GraphiQL starts with the development token only where anyone could mint it anyway.
      ...(!production && authConfig.developmentSecret ? { developmentToken: () => mintDevToken({}, source) } : {}),
    }),
    rest.route,
  );
  // Admission control (gateway/admission): short requests take a slot or are refused at once;
  // new streams are refused while slots are short. Metrics scrapes are never gated.
  const admission = createAdmission({
    config: admissionConfig,
    agentClaim: authConfig.agentClaim,
    exempt: (pathname) => pathname === METRICS_PATH,
    streams: (pathname) => pathname === SSE_PATH,
    metrics,
  });
  const subscriptions = createGatewaySubscriptions({
    gateway,
    execute: executeOperation,
    dataSources,
    context: requestContext,
    authenticator,
    identity,
    policy: () => policy,
    admitDocument: subscriptionDocumentGate(trustedDocuments.registry, logger),
    trustProxy: config.TRUST_PROXY,
    overloaded: () => admission.overloaded(),
    config,
    subscriptionConfig,
    validationRules: limitRules(limits.query),
    parseOptions: parseOptions(limits.query),
    logger,
  });
  routes.push(...subscriptions.routes);
  const metricsServed = metricsRoute(metrics, metricsAccess(metricsConfig, production, adminMetricsAccess(requestContext)));
  if (metricsServed) routes.unshift(metricsServed);

  let http: RunningHttpServer;
  try {
    http = await startHttpServer<GatewayContext>(
      {
        logger,
        metrics,
        maxBodyBytes: config.MAX_BODY_BYTES,
        apollo,
        routes,
        trustProxy: config.TRUST_PROXY,
        context: requestContext,
        admit: admission.admit,
        ...(admissionConfig.HEALTH_PORT === 0 ? {} : { healthPort: admissionConfig.HEALTH_PORT }),
        maxConnections: admissionConfig.MAX_CONNECTIONS,
        execute: (request, context) => prepared.execute(apollo, request, context),
        // Requests Node's parser refuses (too long, malformed): problem+json on REST paths.
        formatClientError: ({ status, code, message, path, requestId }) =>
          path !== undefined && rest.owns(path)
            ? { contentType: `${PROBLEM_CONTENT_TYPE}; charset=utf-8`, body: JSON.stringify(problem(status, code, message, { instance: path, requestId })) }
            : undefined,
        // Ready whatever the subgraphs' state (the gateway serves partial data); each one's state is shown.
        readiness: async () => {
          if (!loaded) throw new Error('no supergraph loaded');
          const checks: Record<string, string> = {};
          for (const [name, state] of Object.entries(upstreams.states())) checks[`subgraph:${name}`] = describeState(state);
          return checks;
        },
      },
      { host: config.HOST, port: config.GATEWAY_PORT },
    );
  } catch (err) {
    await apollo.stop();
    upstreams.close();
    await agent.close();
    await rateLimiter.close();
    throw err;
  }
  subscriptions.attach(http.server);
  const metricsListener = await startMetricsListener(metrics, config.HOST, logger);
  logger.info({ url: http.url, supergraph: config.SUPERGRAPH_PATH }, 'gateway ready');

  let stopping: Promise<void> | undefined;
  return {
    url: http.url,
    port: http.port,
    ...(http.healthPort === undefined ? {} : { healthPort: http.healthPort }),
    server: http.server,
    apollo,
    gateway,
    config,
    logger,
    subscriptions,
    prepared,
    upstreams,
    stop() {
      stopping ??= (async () => {
        // WebSockets and SSE streams first: they never finish on their own, http.close() would wait.
        await subscriptions.close(config.SHUTDOWN_TIMEOUT_MS);
        await http.close(config.SHUTDOWN_TIMEOUT_MS);
        await metricsListener?.close();
        await apollo.stop();
        upstreams.close();
        await agent.close();
        await rateLimiter.close();
        await tracing.shutdown();
        logger.info('gateway stopped');
      })();
      return stopping;
    },
  };
}
