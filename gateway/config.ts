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
  SUBGRAPH_RETRIES: env.int(
    'extra attempts of a failed subgraph query (refused, reset, HTTP 502/503/504), on another replica when there is one, with exponential backoff and jitter; mutations are never retried',
    2,
    0,
  ),
  SUBGRAPH_RETRY_DELAY_MS: env.int('first backoff before a retry; it grows exponentially (with jitter) up to 1 s', 25, 1),
  SUBGRAPH_BREAKER_FAILURES: env.int(
    'consecutive failed fetches to a subgraph that open its circuit breaker (fetches then fail at once with reason CIRCUIT_OPEN); 0 = no breaker',
    5,
    0,
  ),
  SUBGRAPH_BREAKER_HALF_OPEN_MS: env.int('how long an open breaker fails fetches at once before it lets one probe fetch through (half-open)', 5_000, 1),
  SUBGRAPH_MAX_CONCURRENCY: env.int('most fetches in flight to one subgraph (bulkhead); more wait in a queue', 256, 1),
  SUBGRAPH_MAX_QUEUED: env.int('most fetches waiting for a slot of a full bulkhead; past it they fail at once with reason BULKHEAD_FULL', 1024, 0),
  SUBGRAPH_BALANCING: env.oneOf('how a subgraph with several URLs picks a replica per request', ['least-pending', 'round-robin'] as const, 'least-pending'),
  SUBGRAPH_EJECT_FAILURES: env.int('consecutive failures after which a replica gets no requests until a probe of it succeeds', 3, 1),
  SUBGRAPH_PROBE_MS: env.int('how often an ejected replica is probed with { __typename }', 1_000, 10),
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
  /** SUBGRAPH_<NAME>_URL variable → URL replacing that subgraph's routing URL in the supergraph (the first one when it lists several). */
  subgraphUrls: Record<string, string>;
  /** SUBGRAPH_<NAME>_URL variable → every replica URL it lists (comma-separated), in order. */
  subgraphReplicas: Record<string, string[]>;
  /** SUBGRAPH_<NAME>_TIMEOUT_MS variable → that subgraph's own timeout, replacing SUBGRAPH_TIMEOUT_MS. */
  subgraphTimeouts: Record<string, number>;
};

const OVERRIDE = /^SUBGRAPH_[A-Z0-9_]+_URL$/;
const TIMEOUT_OVERRIDE = /^SUBGRAPH_[A-Z0-9_]+_TIMEOUT_MS$/;

/** SUBGRAPH_<NAME>_TIMEOUT_MS for a subgraph name as the supergraph spells it. */
export function subgraphTimeoutVariable(name: string): string {
  return `SUBGRAPH_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_TIMEOUT_MS`;
}

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
  const overrideSpec: Record<string, ReturnType<typeof env.urls>> = {};
  const timeoutSpec: Record<string, ReturnType<typeof env.int>> = {};
  for (const name of Object.keys(source)) {
    if (OVERRIDE.test(name))
      overrideSpec[name] = env.urls('URLs of a subgraph (comma-separated replicas), replacing its routing URL in the supergraph', ['http', 'https']);
    else if (TIMEOUT_OVERRIDE.test(name)) timeoutSpec[name] = env.int('longest a request to this subgraph may take, replacing SUBGRAPH_TIMEOUT_MS', 10_000, 1);
  }
  let base: ConfigOf<typeof gatewaySpec> | undefined;
  let overrides: Record<string, string[]> = {};
  let timeouts: Record<string, number> = {};
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
  try {
    timeouts = loadConfig(timeoutSpec, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0 || !base) throw new ConfigError(problems);

  const subgraphUrls: Record<string, string> = {};
  const subgraphReplicas: Record<string, string[]> = {};
  for (const [variable, urls] of Object.entries(overrides)) {
    if (urls[0] === undefined) continue;
    subgraphUrls[variable] = urls[0];
    subgraphReplicas[variable] = urls;
  }
  return { ...base, subgraphUrls, subgraphReplicas, subgraphTimeouts: timeouts };
}
