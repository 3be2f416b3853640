import type { Server } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startHttpServer, type Route, type RunningHttpServer } from '../runtime/http.ts';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { loadGatewayConfig, subgraphUrlVariable, type GatewayConfig } from './config.ts';
import { createGatewayContext, type GatewayContext } from './context.ts';
import { formatGatewayError } from './errors.ts';
import { createSubgraphAgent, SubgraphDataSource } from './subgraph-client.ts';
import { readSupergraph, watchedSupergraph } from './supergraph.ts';

export interface RunningGateway {
  url: string;
  port: number;
  /** For transports added later (WebSocket upgrades, SSE) that share the port. */
  server: Server;
  /** The execution core: later transports (subscriptions, REST) run operations through it. */
  apollo: ApolloServer<GatewayContext>;
  gateway: ApolloGateway;
  config: GatewayConfig;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * Starts the gateway: the supergraph from SUPERGRAPH_PATH (reloaded when the file changes),
 * subgraphs reached at their routing URLs or SUBGRAPH_<NAME>_URL, served over runtime/http.ts.
 * Throws ConfigError for bad variables and SupergraphFileError for a missing or invalid file.
 */
export async function startGateway(source: Record<string, string | undefined> = process.env): Promise<RunningGateway> {
  const config = loadGatewayConfig(source);
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const initialSdl = await readSupergraph(config.SUPERGRAPH_PATH);

  const agent = createSubgraphAgent();
  const routed = new Set<string>();
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
      const override = config.subgraphUrls[variable];
      const target = override ?? url;
      if (!target) throw new Error(`subgraph "${name}" has no routing URL in the supergraph; set ${variable}`);
      routed.add(variable);
      logger.info({ subgraph: name, url: target, from: override ? variable : 'supergraph' }, 'subgraph route');
      return new SubgraphDataSource({
        name,
        url: target,
        dispatcher: agent,
        timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
        forwardHeaders: config.FORWARD_HEADERS,
        logger,
      });
    },
    logger,
  });
  let loaded = false;
  gateway.onSchemaLoadOrUpdate(() => {
    loaded = true;
  });

  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: config.NODE_ENV !== 'production',
    includeStacktraceInErrorResponses: false,
    formatError: formatGatewayError(logger),
    // stopOnSignals (main.ts) owns shutdown: Apollo's own handler would stop the server and
    // re-raise the signal before in-flight HTTP requests had finished.
    stopOnTerminationSignals: false,
    logger,
  });
  try {
    await apollo.start();
  } catch (err) {
    await agent.close();
    throw err;
  }
  for (const variable of Object.keys(config.subgraphUrls)) {
    if (!routed.has(variable)) logger.warn({ variable }, `${variable} names no subgraph of the supergraph; ignored`);
  }

  // Transports beyond GraphQL over HTTP POST/GET (REST facade, docs, SSE) are thin adapters over
  // the same core (`apollo` and `gateway`); each registers its routes here.
  const routes: Route[] = [];

  let http: RunningHttpServer;
  try {
    http = await startHttpServer<GatewayContext>(
      {
        logger,
        maxBodyBytes: config.MAX_BODY_BYTES,
        apollo,
        routes,
        context: async (info) => createGatewayContext(info, logger),
        readiness: async () => {
          if (!loaded) throw new Error('no supergraph loaded');
        },
      },
      { host: config.HOST, port: config.GATEWAY_PORT },
    );
  } catch (err) {
    await apollo.stop();
    await agent.close();
    throw err;
  }
  logger.info({ url: http.url, supergraph: config.SUPERGRAPH_PATH }, 'gateway ready');

  let stopping: Promise<void> | undefined;
  return {
    url: http.url,
    port: http.port,
    server: http.server,
    apollo,
    gateway,
    config,
    logger,
    stop() {
      stopping ??= (async () => {
        await http.close(config.SHUTDOWN_TIMEOUT_MS);
        await apollo.stop();
        await agent.close();
        logger.info('gateway stopped');
      })();
      return stopping;
    },
  };
}
