// Everything the benchmark runs, each as its own process: every subgraph of the platform on the
// seeded data, stock @apollo/gateway, our gateway, and any --variant of ours.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { subgraphs as subgraphRegistry } from '../subgraphs/index.ts';
import { buildGateway, GATEWAY_NODE_ARGS } from '../scripts/build-gateway.ts';
import { InspectorProfiler } from './inspector-profiler.ts';
import { answersGraphQL, freePort, launch, readyz, REPO_ROOT, type Service } from './launcher.ts';
import type { BenchOptions } from './options.ts';
import type { TargetKind } from './scenarios.ts';
import { stockSupergraph } from './stock-supergraph.ts';

const SUPERGRAPH = join(REPO_ROOT, 'schema', 'supergraph.graphql');

/**
 * Our gateway's settings besides the defaults, each for a reason (--ours-env overrides them):
 * the access log stays on (its default, and its cost is part of the product); one caller sending
 * thousands of requests a second would be rate limited at once, so the limiter gets a budget it
 * never reaches but still runs; and the default query cost limit (5,000) rejects the 50-agent join
 * (estimated at about 11,800), so it is raised and still checked.
 */
export const OURS_ENV = { LOG_LEVEL: 'info', RATE_LIMIT_HTTP_REQUESTS: '1000000000', MAX_QUERY_COST: '100000' };

export interface Services {
  /** Every subgraph of the platform, by name (the supergraph routes to all of them). */
  subgraphs: Record<string, Service>;
  /** stock, ours and ours:<variant>, as asked for. */
  gateways: Map<TargetKind, Service>;
  /** With --profile: each gateway's inspector, to profile single measurements. */
  profilers: Map<TargetKind, InspectorProfiler>;
  /** The processes whose CPU and memory are read, by name. */
  all(): { name: string; pid: number }[];
  stop(): Promise<void>;
}

/** SUBGRAPH_<NAME>_URL, as both gateways read it. */
const urlVariable = (name: string) => `SUBGRAPH_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;

export async function startServices(options: BenchOptions, work: string, dataDir: string, logDir: string): Promise<Services> {
  let bundle: string | undefined;
  // Development mode everywhere: stock @apollo/gateway cannot sign the gateway identity our
  // subgraphs expect in production, so the subgraphs accept unsigned requests (ALLOW_UNSIGNED_DEV)
  // and our gateway runs on its development auth defaults. Logging: warn in the subgraphs (the same
  // for every target), our gateway's default (info: one access-log line per request).
  const common = { NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ALLOW_UNSIGNED_DEV: 'true' };
  const started = await Promise.all(
    Object.keys(subgraphRegistry).map(async (name) => {
      const port = await freePort();
      return launch({
        name,
        args: ['scripts/subgraph.ts', name],
        port,
        env: { ...common, [`${name.toUpperCase()}_PORT`]: String(port) },
        logDir,
        ready: readyz,
      });
    }),
  );
  const subgraphs = Object.fromEntries(started.map((s) => [s.name, s]));
  const gateways = new Map<TargetKind, Service>();
  const profilers = new Map<TargetKind, InspectorProfiler>();
  const services: Services = {
    subgraphs,
    gateways,
    profilers,
    all: () => [...started, ...gateways.values()].map((s) => ({ name: s.name, pid: s.pid })),
    async stop() {
      for (const profiler of profilers.values()) profiler.close();
      await Promise.all([...gateways.values()].map((g) => g.stop()));
      await Promise.all(started.map((s) => s.stop()));
    },
  };

  try {
    // One after the other: gateways compiling their query planners at once would only slow each other.
    const gatewayKinds = options.targets.filter((t): t is Exclude<TargetKind, 'subgraph'> => t !== 'subgraph');
    for (const kind of gatewayKinds) {
      const port = await freePort();
      const inspectPort = await freePort();
      const nodeArgs = options.profile ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
      let service: Service;
      if (kind === 'stock') {
        const file = join(work, 'stock-supergraph.graphql');
        writeFileSync(file, stockSupergraph(readFileSync(SUPERGRAPH, 'utf8'), Object.fromEntries(started.map((s) => [s.name, `${s.baseUrl}/graphql`]))));
        service = await launch({
          name: 'stock',
          args: ['bench/stock-gateway.mjs'],
          tsx: false,
          nodeArgs,
          port,
          env: { NODE_ENV: 'development', STOCK_PORT: String(port), SUPERGRAPH_PATH: file },
          logDir,
          ready: answersGraphQL,
        });
      } else {
        const variant = kind === 'ours' ? undefined : options.variants.find((v) => `ours:${v.name}` === kind);
        // As `npm run gateway` runs it: the built bundle under plain node. Another checkout
        // (--compare) runs from its sources under tsx, as they are.
        const how = variant?.root
          ? { args: ['gateway/main.ts'], cwd: variant.root, nodeArgs }
          : {
              args: [(bundle ??= await buildGateway())],
              tsx: false,
              nodeArgs: [...GATEWAY_NODE_ARGS, ...options.oursNodeArgs, ...(variant?.nodeArgs ?? []), ...nodeArgs],
            };
        service = await launch({
          name: kind,
          ...how,
          port,
          env: {
            NODE_ENV: 'development',
            ...OURS_ENV,
            GATEWAY_PORT: String(port),
            SUPERGRAPH_PATH: SUPERGRAPH,
            ...Object.fromEntries(started.map((s) => [urlVariable(s.name), `${s.baseUrl}/graphql`])),
            ...(variant ? variant.env : options.oursEnv),
          },
          logDir,
          ready: readyz,
        });
      }
      gateways.set(kind, service);
      if (options.profile) profilers.set(kind, await InspectorProfiler.connect(inspectPort));
    }
  } catch (err) {
    await services.stop();
    throw err;
  }
  return services;
}
