// Prometheus metrics shared by the gateway and every subgraph: one registry per service (so the
// subgraphs `npm start` runs in one process keep their own series), Node's default process
// metrics, the RED histograms every service has (HTTP requests, GraphQL operations), the
// `/metrics` route, and the bounding of operation names. Domain-free: what a subgraph counts of
// its own domain it registers through its definition's metrics() hook (runtime/subgraph.ts), and
// the gateway's own series live in gateway/metrics.ts.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { env, loadConfig } from './config.ts';
import { sendJson, splitTarget, type RequestInfo, type Route } from './http.ts';
import type { Logger } from './logger.ts';

export { Counter, Gauge, Histogram, Registry };

export const METRICS_PATH = '/metrics';

export const metricsSpec = {
  METRICS_ENABLED: env.bool('serve Prometheus metrics at /metrics and record them', true),
  METRICS_PORT: env.port('serve /metrics on this port of its own (for an internal network) instead of the service port; 0: on the service port', 0),
  METRICS_TOKEN: env.optionalString(
    'bearer token that may read /metrics on the service port (in production it is required there, or the admin scope on the gateway)',
  ),
  METRICS_TENANT_LABELS: env.bool('add a tenant label to the per-operation series (one series per tenant: only for a handful of tenants)', false),
};

export type MetricsConfig = ReturnType<typeof loadMetricsConfig>;

export function loadMetricsConfig(source: Record<string, string | undefined> = process.env) {
  return loadConfig(metricsSpec, source);
}

/** Latency buckets in seconds: 1 ms to 10 s, dense where an API answers. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds since a process.hrtime.bigint() reading. */
export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * The labelled child of a histogram or counter, looked up by one joined key: prom-client's own
 * labels() validates and hashes the label values on every call, a few microseconds per request
 * on the hot path. Children stay valid as long as the metric is never reset (these are not).
 */
function children<T>(make: (values: string[]) => T): (...values: string[]) => T {
  const cache = new Map<string, T>();
  return (...values) => {
    const key = values.join('\u0000');
    let child = cache.get(key);
    if (child === undefined) {
      child = make(values);
      cache.set(key, child);
    }
    return child;
  };
}

/** Label of operations sent without a name. */
export const ANONYMOUS_OPERATION = 'anonymous';
/** Label of every operation name not in the known set. */
export const OTHER_OPERATION = 'other';

/**
 * Operation names as labels: only names of documents the service knows (registered trusted
 * documents, REST routes' operations, a subgraph's schema fields) are kept; anything a client
 * made up becomes "other", so a client cannot create series at will.
 */
export class OperationNames {
  private readonly known = new Set<string>();
  constructor(names: Iterable<string> = []) {
    this.add(names);
  }
  add(names: Iterable<string>): void {
    for (const name of names) this.known.add(name);
  }
  label(name: string | null | undefined): string {
    if (name === undefined || name === null || name === '') return ANONYMOUS_OPERATION;
    return this.known.has(name) ? name : OTHER_OPERATION;
  }
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);
/** Paths every service has; any other path not named by a route is "other". */
const FIXED_ROUTES = new Set(['/healthz', '/readyz', METRICS_PATH]);

export interface ServiceMetrics {
  readonly enabled: boolean;
  readonly registry: Registry;
  readonly config: MetricsConfig;
  readonly operationNames: OperationNames;
  /** Paths labelled as themselves (the gateway's SSE, docs...); any other path no route named is "other". */
  readonly paths: Set<string>;
  /** One HTTP request: route is a template (REST) or a fixed path, never a raw path. */
  observeRequest(method: string | undefined, route: string, status: number, seconds: number): void;
  /** One GraphQL operation executed (errors: the codes of its errors, empty when it succeeded). */
  observeOperation(
    op: { type: string; name: string | null | undefined; tenant?: string | null | undefined },
    seconds: number,
    errorCodes: readonly string[],
  ): void;
  /** The label of a request's route for observeRequest. */
  routeOf(pathname: string, info: RequestInfo, graphqlPath: string): string;
}

/**
 * The registry and common series of one service. With METRICS_ENABLED=false the same object
 * records nothing (the observe* functions return at once) and no route is served.
 */
export function createServiceMetrics(service: string, config: MetricsConfig): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (config.METRICS_ENABLED) collectDefaultMetrics({ register: registry });
  const operationNames = new OperationNames();
  const paths = new Set(FIXED_ROUTES);
  const tenantLabels = config.METRICS_TENANT_LABELS;
  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route (REST template or fixed path) and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const operationLabels = tenantLabels
    ? (['operation_type', 'operation_name', 'outcome', 'tenant'] as const)
    : (['operation_type', 'operation_name', 'outcome'] as const);
  const operationDuration = new Histogram<string>({
    name: 'graphql_operation_duration_seconds',
    help: 'GraphQL operations executed, by type, bounded operation name and outcome (ok or error)',
    labelNames: operationLabels,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const operationErrors = new Counter<string>({
    name: 'graphql_operation_errors_total',
    help: 'GraphQL errors in executed operations, by bounded operation name and extensions.code',
    labelNames: tenantLabels ? ['operation_name', 'code', 'tenant'] : ['operation_name', 'code'],
    registers: [registry],
  });
  const requestChild = children((values) => requestDuration.labels(...values));
  const operationChild = children((values) => operationDuration.labels(...values));
  const errorChild = children((values) => operationErrors.labels(...values));
  return {
    enabled: config.METRICS_ENABLED,
    registry,
    config,
    operationNames,
    paths,
    observeRequest(method, route, status, seconds) {
      if (!config.METRICS_ENABLED) return;
      const m = method && METHODS.has(method) ? method : 'other';
      requestChild(m, route, String(status)).observe(seconds);
    },
    observeOperation(op, seconds, errorCodes) {
      if (!config.METRICS_ENABLED) return;
      const name = operationNames.label(op.name);
      const outcome = errorCodes.length === 0 ? 'ok' : 'error';
      if (tenantLabels) {
        const tenant = op.tenant ?? 'none';
        operationChild(op.type, name, outcome, tenant).observe(seconds);
        for (const code of errorCodes) errorChild(name, code, tenant).inc();
      } else {
        operationChild(op.type, name, outcome).observe(seconds);
        for (const code of errorCodes) errorChild(name, code).inc();
      }
    },
    routeOf(pathname, info, graphqlPath) {
      if (info.route !== undefined) return info.route;
      if (pathname === graphqlPath || paths.has(pathname)) return pathname;
      return 'other';
    },
  };
}

/** extensions.code of each error of a result (INTERNAL_SERVER_ERROR when an error has none). */
export function errorCodesOf(errors: readonly { extensions?: Record<string, unknown> | undefined }[] | undefined): string[] {
  if (!errors || errors.length === 0) return [];
  return errors.map((e) => (typeof e.extensions?.code === 'string' ? e.extensions.code : 'INTERNAL_SERVER_ERROR'));
}

/**
 * A gauge whose value is read when Prometheus scrapes (a count the service already keeps, a cheap
 * query): nothing is paid between scrapes. `read` sets the labelled values.
 */
export function callbackGauge<L extends string>(
  registry: Registry,
  definition: { name: string; help: string; labelNames?: readonly L[] },
  read: (set: (labels: Partial<Record<L, string>>, value: number) => void) => Promise<void> | void,
): Gauge<L> {
  const gauge: Gauge<L> = new Gauge<L>({
    name: definition.name,
    help: definition.help,
    labelNames: definition.labelNames ?? [],
    registers: [registry],
    async collect() {
      gauge.reset();
      await read((labels, value) => gauge.set(labels, value));
    },
  });
  return gauge;
}

/**
 * A counter fed from a running total the service already keeps (dedup, prepared operations):
 * on each scrape it moves by what the total moved since the last one.
 */
export function callbackCounter<L extends string>(
  registry: Registry,
  definition: { name: string; help: string; labelNames?: readonly L[] },
  /** The running total, or the running total per value of `label`. */
  read: () => Record<string, number> | number,
  label?: L,
): Counter<L> {
  const last = new Map<string, number>();
  const counter: Counter<L> = new Counter<L>({
    name: definition.name,
    help: definition.help,
    labelNames: definition.labelNames ?? [],
    registers: [registry],
    collect() {
      const totals = read();
      const entries: [string, number][] = typeof totals === 'number' ? [['', totals]] : Object.entries(totals);
      for (const [value, total] of entries) {
        const delta = total - (last.get(value) ?? 0);
        last.set(value, total);
        if (delta <= 0) continue;
        if (label && value !== '') counter.inc({ [label]: value } as Partial<Record<L, string>>, delta);
        else counter.inc(delta);
      }
    },
  });
  return counter;
}

export type MetricsAccess = 'allowed' | { status: number; code: string; message: string };

/**
 * Who may read /metrics on the service port: with METRICS_TOKEN, whoever sends it as a bearer
 * token; otherwise anyone outside production. `fallback` lets the gateway admit its admin scope.
 */
export function metricsAccess(config: MetricsConfig, production: boolean, fallback?: (info: RequestInfo) => Promise<MetricsAccess>) {
  return async (info: RequestInfo): Promise<MetricsAccess> => {
    const token = config.METRICS_TOKEN;
    if (token !== undefined) {
      const sent = /^Bearer\s+(.+)$/i.exec(info.headers.get('authorization') ?? '')?.[1];
      if (sent !== undefined && sameSecret(sent, token)) return 'allowed';
    }
    if (!production && token === undefined) return 'allowed';
    if (fallback) return fallback(info);
    return token === undefined
      ? {
          status: 403,
          code: 'FORBIDDEN',
          message: `${METRICS_PATH} is not served on this port in production: set METRICS_PORT (own listener) or METRICS_TOKEN`,
        }
      : { status: 401, code: 'UNAUTHENTICATED', message: `${METRICS_PATH} needs Authorization: Bearer <METRICS_TOKEN>` };
  };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function writeMetrics(registry: Registry, res: ServerResponse): Promise<void> {
  const text = await registry.metrics();
  res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * GET /metrics on the service port (a runtime/http.ts Route); undefined when metrics are off or
 * served on a port of their own.
 */
export function metricsRoute(metrics: ServiceMetrics, access: (info: RequestInfo) => Promise<MetricsAccess>): Route | undefined {
  if (!metrics.enabled || metrics.config.METRICS_PORT !== 0) return undefined;
  return async (req: IncomingMessage, res: ServerResponse, info: RequestInfo) => {
    if (splitTarget(req.url ?? '/').pathname !== METRICS_PATH) return false;
    info.route = METRICS_PATH;
    const decision = await access(info);
    if (decision !== 'allowed') {
      sendJson(res, decision.status, { errors: [{ message: decision.message, extensions: { code: decision.code } }] }, 'application/graphql-response+json');
      return true;
    }
    await writeMetrics(metrics.registry, res);
    return true;
  };
}

export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

/**
 * METRICS_PORT: /metrics alone on a listener of its own, without credentials (it is meant for a
 * network only Prometheus reaches). Undefined when metrics are off or on the service port.
 */
export async function startMetricsListener(metrics: ServiceMetrics, host: string, logger: Logger): Promise<MetricsListener | undefined> {
  if (!metrics.enabled || metrics.config.METRICS_PORT === 0) return undefined;
  const server: Server = createServer((req, res) => {
    if (splitTarget(req.url ?? '/').pathname !== METRICS_PATH) return sendJson(res, 404, { error: 'not found' });
    writeMetrics(metrics.registry, res).catch((err: unknown) => {
      logger.error({ err }, 'metrics collection failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'metrics collection failed' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(metrics.config.METRICS_PORT, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, path: METRICS_PATH }, 'metrics listener ready');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
