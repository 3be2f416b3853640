import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloServer, type ApolloServerPlugin, type BaseContext } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import { GraphQLError, parse, type GraphQLFormattedError } from 'graphql';
import type { Migration } from 'kysely';
import { commonSpec, env, loadConfig, subgraphSpec, type CommonConfig, type ConfigOf } from './config.ts';
import { baseContext, type RequestContext } from './context.ts';
import { IDEMPOTENCY_KEY_HEADER } from './idempotency.ts';
import { openDatabase, type Database } from './db.ts';
import { createEventBus, type EventBus } from './events.ts';
import { hasOutboxMigrations, Outbox } from './outbox.ts';
import type { EventSink } from './unit-of-work.ts';
import { startHttpServer, type Route, type RunningHttpServer } from './http.ts';
import { eventLogRoute } from './event-log-route.ts';
import { createIdentityService, IDENTITY_HEADER, IdentityError, loadIdentityConfig, type IdentityService, type RequestIdentity } from './identity.ts';
import { createLogger, type Logger } from './logger.ts';
import { findNulCharacter, nulCharacterError } from './nul-characters.ts';
import { EventStreams } from './event-streams.ts';
import { serveSubscriptions, subscriptionsOverHttpRejected } from './subscriptions.ts';
import { loadTracingConfig, recordedTraceId, startTracing } from './tracing.ts';
import { graphqlTracingPlugins } from './graphql-tracing.ts';
import { createServiceMetrics, loadMetricsConfig, metricsAccess, metricsRoute, startMetricsListener, type Registry } from './metrics.ts';
import { createSubgraphMetrics } from './subgraph-metrics.ts';

/** What a subgraph gets to build itself with. */
export interface SubgraphDeps<DB> {
  database: Database<DB>;
  bus: EventBus;
  /**
   * Where its stores send the events of their transactions (runtime/unit-of-work.ts): the
   * subgraph's outbox when its definition has one, else the bus.
   */
  events: EventSink;
  logger: Logger;
  config: CommonConfig;
  /** Signs identities for calls to other subgraphs (runtime/service-client.ts). */
  identity: IdentityService;
  /** The environment the service was started with, for the subgraph's own settings. */
  env: Record<string, string | undefined>;
}

/** What a subgraph's create() returns: its resolvers, its per-request context, its jobs. */
export interface SubgraphInstance<C extends RequestContext> {
  /** Typed by the subgraph with its codegen Resolvers type. */
  resolvers: object;
  createContext(base: RequestContext): C;
  /** Background work (sweepers...), started once the server listens. */
  start?(): void;
  /** Stops background work; awaited before the database closes. */
  stop?(): Promise<void> | void;
  /**
   * Registers the subgraph's own series (tasks by state...) on its registry: callback gauges read
   * at scrape time with cheap queries, counters its code increments (runtime/metrics.ts).
   */
  registerMetrics?(registry: Registry): void;
  /** HTTP routes of its own beside GraphQL (the integrations subgraph's inbound webhooks). */
  routes?: Route[];
}

/** Every subgraph exports one of these from its index.ts; the runtime does the rest. */
export interface SubgraphDefinition<DB, C extends RequestContext> {
  name: string;
  defaultPort: number;
  migrations: Record<string, Migration>;
  /**
   * Its events go through a transactional outbox (runtime/outbox.ts; its migrations include
   * outboxMigration() and outboxTraceMigration(), checked at start): stored with each change, relayed after a crash, and the log its
   * subscriptions resume from.
   */
  outbox?: boolean;
  create(deps: SubgraphDeps<DB>): SubgraphInstance<C>;
}

export interface RunningSubgraph {
  name: string;
  url: string;
  port: number;
  database: Database<unknown>;
  bus: EventBus;
  /**
   * Resolves once the events of the writes so far are published and marked: background
   * statements that would otherwise land in a test's statement or commit count.
   */
  settleEvents(): Promise<void>;
  stop(): Promise<void>;
}

export function schemaPath(name: string): string {
  return fileURLToPath(new URL(`../schema/${name}.graphql`, import.meta.url));
}

/**
 * Errors thrown on purpose carry a code (GraphQLError with extensions.code, or Apollo's own
 * validation and parsing errors). Anything else is a bug: the client gets a correlation id, the
 * log gets the stack.
 */
function clientStatusWithoutCode(error: unknown): boolean {
  if (!(error instanceof GraphQLError) || error.extensions.code !== undefined) return false;
  const status = (error.extensions.http as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500;
}

export function maskErrors(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    // Apollo Server refuses some requests with an uncoded error and a 4xx status of its own (an
    // APQ hash that does not match its query): the client's mistake, not a bug.
    if (clientStatusWithoutCode(original)) {
      const { stacktrace: _drop, http: _status, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions: { ...extensions, code: 'BAD_REQUEST' } };
    }
    const code = formatted.extensions?.code;
    const intended = original instanceof GraphQLError && typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR';
    if (intended) {
      const { stacktrace: _drop, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions };
    }
    const correlationId = randomUUID();
    logger.error({ err: original, correlationId, path: formatted.path }, 'internal error in resolver');
    const traceId = recordedTraceId();
    return {
      message: `Internal server error (correlation id ${correlationId})`,
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: traceId ? { code: 'INTERNAL_SERVER_ERROR', correlationId, traceId } : { code: 'INTERNAL_SERVER_ERROR', correlationId },
    };
  };
}

/**
 * The identity the gateway signed for this subgraph; a missing or invalid token is refused with
 * 401 UNAUTHENTICATED (ALLOW_UNSIGNED_DEV aside), so calling a subgraph directly bypasses nothing.
 */
export async function verifiedIdentity(identity: IdentityService, headerValue: string | null | undefined, audience: string): Promise<RequestIdentity> {
  try {
    return await identity.verifyIdentity(headerValue, audience);
  } catch (err) {
    if (err instanceof IdentityError) throw err.toGraphQLError();
    throw err;
  }
}

/** What subgraphs started in one process may share. */
export interface SharedServices {
  /**
   * One event bus for every subgraph of the process (`npm start`, in-process tests), so that
   * without Redis they still hear each other's events (orchestration hears AgentStatusChanged).
   * The starter owns it: the subgraph does not close it.
   */
  bus?: EventBus;
}

export async function startSubgraph<DB, C extends RequestContext>(
  def: SubgraphDefinition<DB, C>,
  source: Record<string, string | undefined> = process.env,
  shared: SharedServices = {},
): Promise<RunningSubgraph> {
  const portVar = `${def.name.toUpperCase()}_PORT`;
  const config = loadConfig({ ...commonSpec, ...subgraphSpec }, source);
  const port = loadConfig({ [portVar]: env.port(`port of the ${def.name} subgraph`, def.defaultPort) }, source)[portVar] ?? def.defaultPort;
  // Before anything is opened: production refuses to start without its own signing secret.
  const identity = createIdentityService(loadIdentityConfig(source));
  const logger = createLogger(def.name, config.LOG_LEVEL);
  // Before the database opens: its statements are traced only when tracing is on at that point.
  const tracing = await startTracing(def.name, loadTracingConfig(source));
  return tracing.run(() => serveSubgraph(def, source, shared, { config, port, identity, logger, shutdownTracing: () => tracing.shutdown() }));
}

async function serveSubgraph<DB, C extends RequestContext>(
  def: SubgraphDefinition<DB, C>,
  source: Record<string, string | undefined>,
  shared: SharedServices,
  {
    config,
    port,
    identity,
    logger,
    shutdownTracing,
  }: {
    config: ConfigOf<typeof commonSpec & typeof subgraphSpec>;
    port: number;
    identity: IdentityService;
    logger: Logger;
    shutdownTracing: () => Promise<void>;
  },
): Promise<RunningSubgraph> {
  if (def.outbox && !hasOutboxMigrations(def.migrations)) {
    throw new Error(`subgraph ${def.name}: outbox is on, so its migrations must list outboxMigration() and then outboxTraceMigration() (runtime/outbox.ts)`);
  }
  const metrics = createServiceMetrics(def.name, loadMetricsConfig(source));
  let served: ReturnType<typeof buildSubgraphSchema> | undefined;
  const observed = createSubgraphMetrics(metrics, () => served);
  const database = await openDatabase<DB>({
    name: def.name,
    dataDir: config.DATA_DIR,
    databaseUrl: config.DATABASE_URL,
    schemaPrefix: config.DATABASE_SCHEMA_PREFIX,
    migrations: def.migrations,
    logger,
    groupCommitMax: config.SQLITE_GROUP_COMMIT_MAX,
    poolMax: config.DATABASE_POOL_MAX,
    poolTimeoutMs: config.DATABASE_POOL_TIMEOUT_MS,
    onCommitGroup: (size) => observed.onCommitGroup(size),
  });
  const bus = observed.observeBus(
    shared.bus ??
      createEventBus({
        redisUrl: config.REDIS_URL,
        channelPrefix: config.EVENT_CHANNEL_PREFIX,
        logger,
        redisTimeouts: { connectTimeoutMs: config.REDIS_CONNECT_TIMEOUT_MS, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS },
      }),
  );
  const closeBus = () => (shared.bus ? Promise.resolve() : bus.close());
  const outbox = def.outbox
    ? new Outbox({
        database: database as Database<unknown>,
        bus,
        logger,
        channel: def.name,
        retentionSeconds: config.EVENT_RETENTION_SECONDS,
        relayIntervalMs: config.OUTBOX_RELAY_INTERVAL_MS,
        // A test hook that kills the process: honoured only in tests.
        crashAfterCommitOf: config.NODE_ENV === 'test' ? config.TEST_CRASH_AFTER_COMMIT_OF : undefined,
      })
    : undefined;
  const instance = def.create({ database, bus, events: outbox ?? bus, logger, config, identity, env: source });
  if (metrics.enabled) instance.registerMetrics?.(metrics.registry);

  const typeDefs = parse(readFileSync(schemaPath(def.name), 'utf8'));
  // The codegen Resolvers type and @apollo/subgraph's map describe the same object; the
  // subgraph's resolvers.ts is checked against the generated type, this cast only bridges them.
  const schema = buildSubgraphSchema({ typeDefs, resolvers: instance.resolvers as GraphQLResolverMap<unknown> });
  served = schema;
  const apollo = new ApolloServer<C>({
    schema,
    includeStacktraceInErrorResponses: false,
    formatError: maskErrors(logger),
    plugins: [
      subscriptionsOverHttpRejected<C>('subscribe over graphql-ws (graphql-transport-ws) on this same URL'),
      nulCharactersRefused<C>(),
      // Our schemas set no cache hints: the answer is always uncacheable, without per-field work.
      ApolloServerPluginCacheControlDisabled(),
      uncacheable<C>(),
      ...graphqlTracingPlugins<C>(),
      observed.plugin<C>(),
    ],
    // stopOnSignals owns shutdown: Apollo's own SIGTERM handler stops the server and re-raises the
    // signal, which ended the process before in-flight requests finished.
    stopOnTerminationSignals: false,
    // Compact JSON: Apollo's default pretty-prints, which costs CPU here and bytes the gateway parses.
    stringifyResult: (value) => JSON.stringify(value),
    logger,
  });
  await apollo.start();

  let http: RunningHttpServer;
  const metricsServed = metricsRoute(metrics, metricsAccess(metrics.config, config.NODE_ENV === 'production'));
  try {
    http = await startHttpServer<C>(
      {
        logger,
        metrics,
        routes: [
          ...(metricsServed ? [metricsServed] : []),
          // Other subgraphs read this one's retained events here (runtime/event-log-route.ts).
          ...(outbox ? [eventLogRoute({ log: outbox, identity, audience: def.name })] : []),
          ...(instance.routes ?? []),
        ],
        maxBodyBytes: config.MAX_BODY_BYTES,
        apollo,
        context: async (info) =>
          instance.createContext(
            baseContext(
              await verifiedIdentity(identity, info.headers.get(IDENTITY_HEADER), def.name),
              info.requestId,
              logger,
              info.headers.get(IDEMPOTENCY_KEY_HEADER),
            ),
          ),
        readiness: async () => {
          // Without its database a subgraph cannot serve: not ready (the ping throws).
          await database.ping();
          // Without Redis it still can: writes commit, and with an outbox their events wait in it
          // until the relay publishes them once Redis is back. Taking the replica out of rotation
          // for that would turn an event delay into an outage, so it is ready and says so.
          const events = await bus.ping().then(
            () => 'ok',
            (err: unknown) =>
              `degraded: ${err instanceof Error ? err.message : String(err)}; ${outbox ? 'events wait in the outbox until it is back' : 'events published meanwhile are lost'}`,
          );
          observed.setDegraded('events', events !== 'ok');
          return { database: 'ok', events };
        },
      },
      { host: config.HOST, port },
    );
  } catch (err) {
    await apollo.stop();
    await closeBus();
    await database.close();
    throw err;
  }
  // Subscriptions: graphql-ws on the same port and path, for the gateway.
  const streams = outbox ? new EventStreams({ bus, log: outbox, logger, onEvent: (outcome) => observed.onStreamEvent(outcome) }) : undefined;
  observed.attach({ database: database as Database<unknown>, streams });
  const metricsListener = await startMetricsListener(metrics, config.HOST, logger);
  const subscriptions = serveSubscriptions({
    server: http.server,
    schema,
    createContext: (base) => instance.createContext(base),
    verifyIdentity: (headerValue) => verifiedIdentity(identity, headerValue, def.name),
    streams,
    formatError: maskErrors(logger),
    logger,
    maxPayloadBytes: config.MAX_BODY_BYTES,
  });
  // At start the relay publishes whatever a crash left unpublished, then runs every interval.
  outbox?.start();
  instance.start?.();
  logger.info({ url: http.url, database: database.location, bus: bus.kind }, `${def.name} subgraph ready`);

  let stopping: Promise<void> | undefined;
  return {
    name: def.name,
    url: http.url,
    port: http.port,
    database: database as Database<unknown>,
    bus,
    settleEvents: async () => outbox?.settle(),
    stop() {
      stopping ??= (async () => {
        // WebSocket connections are not HTTP requests: http.close() would wait for them.
        await subscriptions.close(config.SHUTDOWN_TIMEOUT_MS);
        await http.close(config.SHUTDOWN_TIMEOUT_MS);
        await metricsListener?.close();
        await instance.stop?.();
        await outbox?.stop();
        await apollo.stop();
        await closeBus();
        await database.close();
        await shutdownTracing();
        logger.info(`${def.name} subgraph stopped`);
      })();
      return stopping;
    },
  };
}

/**
 * What Apollo's cache-control plugin answers for a schema without cache hints (ours has none):
 * every response uncacheable. That plugin computes a policy per resolved field, which made
 * Apollo wrap and time every resolver: 5-8 % of a subgraph's CPU on a lookup.
 */
export function uncacheable<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response }) {
          if (!response.http.headers.has('cache-control')) response.http.headers.set('cache-control', 'no-store');
        },
      };
    },
  };
}

/**
 * The gateway refuses NUL characters for its clients (gateway/nul-character-refusal.ts); this
 * refuses them for whoever else calls a subgraph (another subgraph's service client, a direct
 * signed call), so no store ever sees one: 400 BAD_USER_INPUT before any resolver runs.
 */
export function nulCharactersRefused<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, request }) {
          const found = findNulCharacter(document, request.variables);
          if (found) throw nulCharacterError(found);
        },
      };
    },
  };
}
