import { fileURLToPath } from 'node:url';
import { commonSpec, ConfigError, env, loadConfig, type ConfigOf } from '../runtime/config.ts';

export const DEFAULT_SUPERGRAPH_PATH = fileURLToPath(new URL('../schema/supergraph.graphql', import.meta.url));

export const DEFAULT_FORWARD_HEADERS = ['x-request-id', 'traceparent', 'tracestate', 'accept-language'];

// Credentials end at the gateway: subgraphs learn who is calling only from the identity token the
// gateway signs, so a client-chosen value must never reach them under these names.
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'x-gateway-identity', 'cookie']);

// Hop-by-hop and body-framing headers: copying them would corrupt the subgraph request.
const NOT_FORWARDABLE = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
  'content-type',
  'content-encoding',
  'expect',
]);

function headerList(doc: string, def: string[]): { doc: string; default: string[]; parse(raw: string): string[] } {
  return {
    doc,
    default: def,
    parse(raw) {
      const names = raw
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== '');
      const bad = names.filter((h) => !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(h));
      if (bad.length > 0) throw new Error(`expected comma-separated header names, got ${bad.map((b) => `"${b}"`).join(', ')}`);
      const framing = names.filter((h) => NOT_FORWARDABLE.has(h) || h.startsWith('proxy-'));
      if (framing.length > 0) throw new Error(`${framing.join(', ')} describe the client's own connection or body and cannot be forwarded`);
      const credentials = names.filter((h) => CREDENTIAL_HEADERS.has(h));
      if (credentials.length > 0)
        throw new Error(
          `${credentials.join(', ')} carry credentials, which end at the gateway (subgraphs get a signed identity instead) and cannot be forwarded`,
        );
      return [...new Set(names)];
    },
  };
}

/** Unset means "decided by NODE_ENV" (on outside production). */
function optionalBool(doc: string): { doc: string; default: undefined; parse(raw: string): boolean | undefined } {
  const field = env.bool(doc, false);
  return { doc, default: undefined, parse: (raw) => field.parse(raw) };
}

export const gatewaySpec = {
  ...commonSpec,
  GATEWAY_PORT: env.port('port of the gateway', 4000),
  SUPERGRAPH_PATH: env.string('the composed supergraph SDL file the gateway serves and watches', DEFAULT_SUPERGRAPH_PATH),
  SUPERGRAPH_WATCH: env.bool('reload the supergraph when its file changes', true),
  SUPERGRAPH_POLL_MS: env.int('how often the supergraph file is also stat-polled, for filesystems where change events are missed; 0 = events only', 1000, 0),
  SUBGRAPH_TIMEOUT_MS: env.int('longest a single subgraph request may take', 10_000, 1),
  SUBGRAPH_MAX_RESPONSE_BYTES: env.int(
    'most bytes of one subgraph answer the gateway reads (it buffers whole answers); past it the fetch fails with SUBGRAPH_RESPONSE_TOO_LARGE',
    16 * 1024 * 1024,
    1024,
  ),
  INTROSPECTION: optionalBool('answer introspection queries; default: on outside production, off in production'),
  GRAPHIQL: optionalBool('serve GraphiQL to browsers at /graphql; default: on outside production, off in production'),
  API_KEY_CACHE_MS: env.int(
    'how long a valid API key is trusted without asking the governance subgraph again; a revoked key stops working within this',
    10_000,
    0,
  ),
  TRUST_PROXY: env.bool('take the client address (for rate limits of anonymous callers) from X-Forwarded-For; only behind a reverse proxy you run', false),
  PREPARED_OPERATIONS_MAX: env.int(
    'documents the gateway remembers after Apollo Server executed them, so repeats (HTTP POST, REST routes, queries and mutations over graphql-ws and SSE) skip its request pipeline (README, Design notes); 0 turns this fast path off',
    1000,
    0,
  ),
  FORWARD_HEADERS: headerList('client request headers passed on to every subgraph (comma-separated)', DEFAULT_FORWARD_HEADERS),
};

export type GatewayConfig = ConfigOf<typeof gatewaySpec> & {
  /** SUBGRAPH_<NAME>_URL variable → URL replacing that subgraph's routing URL in the supergraph. */
  subgraphUrls: Record<string, string>;
};

const OVERRIDE = /^SUBGRAPH_[A-Z0-9_]+_URL$/;

/** SUBGRAPH_<NAME>_URL for a subgraph name as the supergraph spells it. */
export function subgraphUrlVariable(name: string): string {
  return `SUBGRAPH_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

/**
 * The override variables are open-ended (one per subgraph in whatever supergraph is loaded), so
 * they are collected by pattern; each is still checked as a URL together with the fixed spec, so
 * every problem is reported at once.
 */
export function loadGatewayConfig(source: Record<string, string | undefined> = process.env): GatewayConfig {
  const overrideSpec: Record<string, ReturnType<typeof env.url>> = {};
  for (const name of Object.keys(source)) {
    if (OVERRIDE.test(name)) overrideSpec[name] = env.url('URL of a subgraph, replacing its routing URL in the supergraph', ['http', 'https']);
  }
  let base: ConfigOf<typeof gatewaySpec> | undefined;
  let overrides: Record<string, string | undefined> = {};
  const problems: string[] = [];
  try {
    base = loadConfig(gatewaySpec, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  try {
    overrides = loadConfig(overrideSpec, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0 || !base) throw new ConfigError(problems);

  const subgraphUrls: Record<string, string> = {};
  for (const [variable, url] of Object.entries(overrides)) if (url) subgraphUrls[variable] = url;
  return { ...base, subgraphUrls };
}
