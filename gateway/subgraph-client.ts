import { STATUS_CODES } from 'node:http';
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { GraphQLError, Kind, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import type { IncomingHttpHeaders } from 'node:http';
import { BrokenCircuitError, BulkheadRejectedError } from 'cockatiel';
import { Agent, type Dispatcher } from 'undici';
import { IDEMPOTENCY_KEY_HEADER } from '../runtime/idempotency.ts';
import { IDENTITY_HEADER, type IdentityClaims, type IdentityService } from '../runtime/identity.ts';
import type { Logger } from '../runtime/logger.ts';
import { identityClaims } from './auth/principal.ts';
import type { GatewayContext } from './context.ts';
import type { InflightDedup } from './dedup.ts';
import { subgraphResponseTooLarge, subgraphUnavailable } from './errors.ts';
import { tracedSubgraphFetch } from './tracing.ts';
import { type Deadline, DeadlineExceededError, type Replica, Upstream } from './upstream/index.ts';

/**
 * One pool of keep-alive connections for all subgraph traffic. Idle sockets are closed by this
 * side after 60 s, before the subgraphs' own 65 s keep-alive timeout (runtime/http.ts), so the
 * gateway never sends a request on a socket the subgraph is about to close.
 */
export function createSubgraphAgent(): Agent {
  return new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
}

export interface SubgraphClientOptions {
  /** The subgraph's name in the supergraph, used in errors and logs. */
  name: string;
  /** Its URL when no upstream is given (one replica, no retries, no breaker: tests and tools). */
  url: string;
  dispatcher: Dispatcher;
  timeoutMs: number;
  /** Replicas, timeout, retries, breaker and bulkhead of the subgraph (gateway/upstream). */
  upstream?: Upstream | undefined;
  /** Most bytes of one answer the gateway buffers; past it the fetch fails with SUBGRAPH_RESPONSE_TOO_LARGE. */
  maxResponseBytes?: number;
  /** Lower-case names of client headers passed on to the subgraph. */
  forwardHeaders: readonly string[];
  logger: Logger;
  /** Shares one request among identical queries in flight (SUBGRAPH_DEDUP): one instance for all of a gateway's subgraph clients. */
  dedup?: InflightDedup<RawResponse> | undefined;
  /**
   * Signs the caller's identity into every request (IDENTITY_HEADER), the only thing subgraphs
   * trust about who is calling. The gateway always sets it; without it subgraphs answer 401
   * unless they run with ALLOW_UNSIGNED_DEV.
   */
  identity?: IdentityService | undefined;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** An answer past SubgraphClientOptions.maxResponseBytes: reading stopped there. */
class ResponseTooLargeError extends Error {
  /** The subgraph answered: not a reason to retry, eject or break (gateway/upstream/policy.ts). */
  readonly outage = false;
  constructor(readonly limit: number) {
    super(`response larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** The gateway acting for itself (no client request behind it). */
const GATEWAY_SERVICE: IdentityClaims = { kind: 'service', subject: 'gateway', tenantId: null, scopes: [] };

/** Who a request acts as: the caller the gateway authenticated (GatewayContext.principal). */
function identityOf(options: GraphQLDataSourceProcessOptions<GatewayContext>): IdentityClaims {
  if (!isIncoming(options)) return GATEWAY_SERVICE;
  return identityClaims(options.context.principal);
}

/** The body as text, as undici's body.text() decodes it: UTF-8, without a leading byte order mark. */
function utf8Text(chunks: Buffer[]): string {
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
  return body.toString('utf8', bom ? 3 : 0);
}

/** A non-2xx answer; keeps the GraphQL errors when the body was a GraphQL response. */
class SubgraphHttpError extends GraphQLError {
  constructor(
    readonly status: number,
    readonly graphqlErrors: GraphQLFormattedError[] | undefined,
  ) {
    const statusText = STATUS_CODES[status] ?? '';
    super(`HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
  }

  /** What proxies and overloaded servers answer: retried, counted by breaker and ejection. Other statuses are the subgraph's answer. */
  get outage(): boolean {
    return isUnavailableStatus(this.status);
  }
}

function isUnavailableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

/** What came back, before parsing: a deduplicated request hands the same one to every waiter. */
export interface RawResponse {
  status: number;
  contentType: string;
  cacheControl: string | undefined;
  text: string;
}

function isFormattedErrorList(value: unknown): value is GraphQLFormattedError[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((e) => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string')
  );
}

/** A short, operator-readable cause: "connect ECONNREFUSED 127.0.0.1:4001", "HTTP 503 ...". */
function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof SubgraphHttpError) return err.message;
  if (err instanceof DeadlineExceededError) return err.message;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no response within ${timeoutMs} ms`;
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof AggregateError) {
    const inner = cause.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).filter((m) => m !== '');
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  if (err instanceof AggregateError) {
    const inner = err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).filter((m) => m !== '');
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  if (cause instanceof Error && cause.message) return cause.message;
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

type IncomingOptions = Extract<GraphQLDataSourceProcessOptions<GatewayContext>, { incomingRequestContext: unknown }>;

/** A client operation, as opposed to the gateway's own health checks (which carry no context). */
function isIncoming(options: GraphQLDataSourceProcessOptions<GatewayContext>): options is IncomingOptions {
  return 'incomingRequestContext' in options;
}

/** Only reads may share a request; a mutation is sent once per client request, always. */
function isQuery(document: DocumentNode | undefined, query: string): boolean {
  if (document) {
    const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    return operations.length > 0 && operations.every((d) => d.operation === 'query');
  }
  return /^\s*(query\b|\{)/.test(query);
}

/** The client's operation is a mutation (the key is never forwarded on reads). */
function isMutation(options: IncomingOptions): boolean {
  return options.incomingRequestContext.operation?.operation === 'mutation';
}

/** Root fields of the client's operation (fragments count as one each: a conservative count). */
function rootFieldCount(options: IncomingOptions): number {
  return options.incomingRequestContext.operation?.selectionSet.selections.length ?? 0;
}

/**
 * One key names one request's effect; a document with several mutation fields has several, so it
 * is refused before any of them runs (every fetch of the document throws this).
 */
function multipleFieldsWithOneKey(): GraphQLError {
  return new GraphQLError('an Idempotency-Key applies to one mutation field; send each mutation in its own request with its own key', {
    extensions: { code: 'BAD_USER_INPUT', header: 'Idempotency-Key', http: { status: 400 } },
  });
}

// Per-request correlation: they differ on every request and change nothing in the answer, so they
// are left out of the key under which identical queries share one subgraph request.
const CORRELATION_HEADERS = new Set(['x-request-id', 'traceparent', 'tracestate']);

/**
 * Requests share an answer only when they act as the same caller: the identity (kind, subject,
 * tenant, scopes, agent) is part of the key, not the signed token, which differs on every request.
 */
function dedupKey(subgraph: string, headers: Record<string, string>, body: string, who: IdentityClaims): string {
  let key = `${subgraph}\n${body}\n${JSON.stringify([who.kind, who.subject, who.tenantId, [...who.scopes].sort(), who.agentId ?? null])}`;
  for (const name in headers) if (!CORRELATION_HEADERS.has(name) && name !== IDENTITY_HEADER) key += `\n${name}:${headers[name]}`;
  return key;
}

/** The subgraph's Cache-Control narrows the client response's cache policy, as in RemoteGraphQLDataSource. */
function restrictCachePolicy(options: GraphQLDataSourceProcessOptions<GatewayContext>, cacheControl: string | undefined): void {
  if (!isIncoming(options)) return;
  const policy = options.incomingRequestContext.overallCachePolicy;
  if (!policy || !('restrict' in policy)) return;
  const hint: { maxAge: number; scope?: 'PRIVATE' | 'PUBLIC' } = { maxAge: 0 };
  for (const part of (cacheControl ?? '').trim().split(/\s*,\s*/)) {
    const [name, raw] = part.split(/\s*=\s*/, 2);
    const value = raw?.replace(/^"|"$/g, '');
    if (name === 'max-age' && value !== undefined && /^[0-9]+$/.test(value)) hint.maxAge = Number(value);
    if (name === 'private') hint.scope = 'PRIVATE';
    if (name === 'public') hint.scope = 'PUBLIC';
  }
  policy.restrict(hint);
}

/**
 * Sends the gateway's subgraph requests with undici's dispatch() over a shared keep-alive pool and a
 * per-request deadline, passes the request id and configured client headers on, and turns
 * transport failures into one SUBGRAPH_UNAVAILABLE error naming the subgraph. That error is thrown
 * from process(): the gateway's executeQueryPlan records an error thrown by a fetch and carries on
 * with the other fetches, so the client still gets the rest of its data with HTTP 200.
 *
 * It implements the gateway's data source interface directly rather than extending
 * RemoteGraphQLDataSource: that class builds node-fetch Headers and Request objects and, through
 * fetch(), WHATWG streams for every subgraph request, which the gateway's CPU profile showed as a
 * tenth of its time (bench/README.md). With dedup on, identical queries in flight at the same
 * time share one request (gateway/dedup.ts, also for read-your-writes); each waiter parses the
 * shared body itself, so no two client requests ever share (and merge into) the same objects. A
 * joined waiter lives by the first request's deadline.
 */
export class SubgraphDataSource implements GraphQLDataSource<GatewayContext> {
  private readonly options: SubgraphClientOptions;
  private readonly dedup: InflightDedup<RawResponse> | undefined;
  readonly upstream: Upstream;

  constructor(options: SubgraphClientOptions) {
    this.options = options;
    this.dedup = options.dedup;
    this.upstream =
      options.upstream ??
      new Upstream({
        name: options.name,
        urls: [options.url],
        timeoutMs: options.timeoutMs,
        retries: 0,
        retryDelayMs: 1,
        breakerFailures: 0,
        breakerHalfOpenMs: 1,
        maxConcurrency: Number.MAX_SAFE_INTEGER,
        maxQueued: 0,
        balancing: 'round-robin',
        ejectAfter: 1,
        probeMs: 1_000,
        probe: async () => true,
      });
  }

  /**
   * Where the subgraph is reached now: its first healthy replica. Read by the subscription
   * upstream (a long-lived connection goes to one replica) and in logs.
   */
  get url(): string {
    return this.upstream.preferredUrl();
  }

  /** The headers of a subgraph request: the gateway's own, the forwarded client headers, the request id. */
  private headersFor(options: GraphQLDataSourceProcessOptions<GatewayContext>): Record<string, string> {
    const headers: Record<string, string> = {};
    // Headers the gateway itself asks for (e.g. apollo-federation-include-trace when tracing).
    const own = options.request.http?.headers;
    if (own) for (const [name, value] of own) headers[name.toLowerCase()] = value;
    headers['content-type'] = 'application/json';
    headers.accept = 'application/json';
    if (isIncoming(options)) {
      const context = options.context;
      for (const name of this.options.forwardHeaders) {
        const value = context.headers.get(name);
        if (value !== undefined) headers[name] = value;
      }
      // The id runtime/http.ts settled on (the client's when valid, else a new one), not the raw header.
      headers['x-request-id'] = context.requestId;
      // Always on mutations, whatever FORWARD_HEADERS says: a create mutation is idempotent only
      // if the subgraph that commits it sees the key (runtime/idempotency.ts). Reads never carry it.
      const key = context.headers.get(IDEMPOTENCY_KEY_HEADER);
      if (key !== undefined && isMutation(options)) headers[IDEMPOTENCY_KEY_HEADER] = key;
    }
    return headers;
  }

  private send(replica: Replica, headers: Record<string, string>, body: string, deadline: Deadline): Promise<RawResponse> {
    // undici's dispatch() with a handler that collects the answer, rather than request(): that
    // one wraps every answer in a Readable stream, about 80 µs of CPU per subgraph request on the
    // benchmark machine (bench/README.md). The deadline is the upstream's: it covers connecting,
    // sending and the whole answer, across attempts.
    return new Promise<RawResponse>((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined;
      let settled = false;
      let aborted: DeadlineExceededError | undefined;
      let status = 0;
      let responseHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let received = 0;
      const limit = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
      const tooLarge = (active: Dispatcher.DispatchController) => {
        const error = new ResponseTooLargeError(limit);
        finish(error);
        active.abort(error);
      };
      const onExpire = () => {
        aborted = new DeadlineExceededError(deadline.timeoutMs);
        finish(aborted);
        // Not yet on a connection: aborted as soon as it gets one (onRequestStart).
        controller?.abort(aborted);
      };
      const finish = (error: Error | undefined, raw?: RawResponse) => {
        if (settled) return;
        settled = true;
        deadline.unwatch();
        if (error) reject(error);
        else resolve(raw as RawResponse);
      };
      deadline.watch(onExpire);
      if (settled) return;
      try {
        this.options.dispatcher.dispatch(
          { origin: replica.origin, path: replica.path, method: 'POST', headers, body },
          {
            onRequestStart(started) {
              controller = started;
              if (aborted !== undefined) started.abort(aborted);
            },
            onResponseStart(active, statusCode, headersReceived) {
              status = statusCode;
              responseHeaders = headersReceived;
              const length = Number(headersReceived['content-length']);
              if (length > limit) tooLarge(active);
            },
            onResponseData(active, chunk) {
              received += chunk.length;
              // Counted as it arrives: a chunked answer without a length is cut off at the limit too.
              if (received > limit) tooLarge(active);
              else chunks.push(chunk);
            },
            onResponseEnd() {
              const contentType = responseHeaders['content-type'];
              const cacheControl = responseHeaders['cache-control'];
              finish(undefined, {
                status,
                contentType: typeof contentType === 'string' ? contentType : '',
                cacheControl: typeof cacheControl === 'string' ? cacheControl : undefined,
                text: utf8Text(chunks),
              });
            },
            onResponseError(_controller, error) {
              finish(error);
            },
          },
        );
      } catch (err) {
        // A closed pool refuses at once.
        finish(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /**
   * One attempt on one replica. A 502, 503 or 504 is thrown here, so that the upstream retries it
   * (queries), counts it against the replica and the breaker; other answers are the subgraph's.
   */
  private async attempt(replica: Replica, headers: Record<string, string>, body: string, deadline: Deadline): Promise<RawResponse> {
    const raw = await this.send(replica, headers, body, deadline);
    if (isUnavailableStatus(raw.status)) this.parse(raw);
    return raw;
  }

  private parse(raw: RawResponse): GatewayGraphQLResponse {
    const json = raw.contentType.startsWith('application/json') || raw.contentType.startsWith('application/graphql-response+json');
    if (raw.status < 200 || raw.status > 299) {
      let errors: GraphQLFormattedError[] | undefined;
      if (json) {
        try {
          const list = (JSON.parse(raw.text) as { errors?: unknown } | null)?.errors;
          if (isFormattedErrorList(list)) errors = list;
        } catch {
          // An unreadable body leaves only the status to report.
        }
      }
      throw new SubgraphHttpError(raw.status, errors);
    }
    const body: unknown = json ? JSON.parse(raw.text) : raw.text;
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new Error(`Expected JSON response body, but received: ${String(raw.text).slice(0, 200)}`);
    return body as GatewayGraphQLResponse;
  }

  async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    const { request: operation } = options;
    if (isIncoming(options) && isMutation(options) && rootFieldCount(options) > 1 && options.context.headers.get(IDEMPOTENCY_KEY_HEADER) !== undefined)
      throw multipleFieldsWithOneKey();
    try {
      if (!operation.query) throw new Error('Missing query');
      const headers = this.headersFor(options);
      const who = identityOf(options);
      const requestId = isIncoming(options) ? options.context.requestId : null;
      if (this.options.identity) headers[IDENTITY_HEADER] = await this.options.identity.signIdentity(who, this.options.name, requestId);
      const body = JSON.stringify({
        query: operation.query,
        variables: operation.variables,
        operationName: operation.operationName,
        extensions: operation.extensions,
      });
      const document = isIncoming(options) ? options.document : undefined;
      const dedup = isIncoming(options) ? this.dedup : undefined;
      // Nothing of a client's mutation is ever retried, not even the reads planned after it: the
      // gateway cannot tell whether a failed attempt was committed (README, Resilience toward subgraphs).
      const retry = isQuery(undefined, operation.query) && !(isIncoming(options) && isMutation(options));
      // One span for the fetch, whatever replicas and attempts it takes (nothing when tracing is off).
      const send = () =>
        tracedSubgraphFetch(this.options.name, this.url, headers, () =>
          this.upstream.execute(retry, (replica, deadline) => this.attempt(replica, headers, body, deadline)),
        );
      const raw = !dedup
        ? await send()
        : isQuery(document, operation.query)
          ? await dedup.run(dedupKey(this.options.name, headers, body, who), send)
          : await dedup.write(send);
      const response = this.parse(raw);
      restrictCachePolicy(options, raw.cacheControl);
      return response;
    } catch (err) {
      // A 4xx carrying GraphQL errors is the subgraph rejecting this operation, not being down:
      // its errors (with their codes) go to the client, named after the subgraph by the gateway.
      if (err instanceof SubgraphHttpError && err.status < 500 && err.graphqlErrors) return { errors: err.graphqlErrors };
      const logger = isIncoming(options) ? options.context.logger : this.options.logger;
      if (err instanceof ResponseTooLargeError) {
        logger.warn({ subgraph: this.options.name, url: this.url, limit: err.limit }, 'subgraph response too large');
        throw subgraphResponseTooLarge(this.options.name, err.limit);
      }
      if (err instanceof BrokenCircuitError) {
        // Logged when the breaker opens (gateway/upstream), not once per refused fetch.
        throw subgraphUnavailable(this.options.name, 'circuit breaker open after repeated failures; retried by itself shortly', 'CIRCUIT_OPEN');
      }
      if (err instanceof BulkheadRejectedError) {
        logger.warn({ subgraph: this.options.name }, 'subgraph bulkhead full; fetch refused');
        throw subgraphUnavailable(this.options.name, 'too many requests to it in flight (SUBGRAPH_MAX_CONCURRENCY)', 'BULKHEAD_FULL');
      }
      const reason = describeFailure(err, this.upstream.timeoutMs);
      logger.warn({ subgraph: this.options.name, url: this.url, reason }, 'subgraph request failed');
      throw subgraphUnavailable(this.options.name, reason);
    }
  }
}
