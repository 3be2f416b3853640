import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import type { FetcherResponse } from '@apollo/utils.fetcher';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { Agent, fetch, type Dispatcher } from 'undici';
import type { Logger } from '../runtime/logger.ts';
import type { GatewayContext } from './context.ts';
import { subgraphUnavailable } from './errors.ts';

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
  url: string;
  dispatcher: Dispatcher;
  timeoutMs: number;
  /** Lower-case names of client headers passed on to the subgraph. */
  forwardHeaders: readonly string[];
  logger: Logger;
}

/** A non-2xx answer; keeps the GraphQL errors when the body was a GraphQL response. */
class SubgraphHttpError extends GraphQLError {
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly graphqlErrors: GraphQLFormattedError[] | undefined,
  ) {
    super(`HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
  }
}

function isFormattedErrorList(value: unknown): value is GraphQLFormattedError[] {
  return Array.isArray(value) && value.length > 0 && value.every((e) => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string');
}

/** A short, operator-readable cause: "connect ECONNREFUSED 127.0.0.1:4001", "HTTP 503 ...". */
function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof SubgraphHttpError) return err.message;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no response within ${timeoutMs} ms`;
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof AggregateError) {
    const inner = cause.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).filter((m) => m !== '');
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

/**
 * Sends the gateway's subgraph requests over undici with a shared keep-alive pool and a
 * per-request deadline, passes the request id and configured client headers on, and turns
 * transport failures into one SUBGRAPH_UNAVAILABLE error naming the subgraph. That error is thrown
 * from process(): the gateway's executeQueryPlan records an error thrown by a fetch and carries on
 * with the other fetches, so the client still gets the rest of its data with HTTP 200.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  private readonly options: SubgraphClientOptions;

  constructor(options: SubgraphClientOptions) {
    super({ url: options.url });
    this.options = options;
    const { dispatcher, timeoutMs } = options;
    // The gateway types its fetcher after node-fetch; undici's Response has the same members.
    this.fetcher = async (url, init) =>
      (await fetch(url, { ...init, dispatcher, signal: AbortSignal.timeout(timeoutMs) })) as unknown as FetcherResponse;
  }

  override willSendRequest(options: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const headers = options.request.http?.headers;
    if (!headers || !isIncoming(options)) return;
    const context = options.context;
    for (const name of this.options.forwardHeaders) {
      const value = context.headers.get(name);
      if (value !== undefined) headers.set(name, value);
    }
    // The id runtime/http.ts settled on (the client's when valid, else a new one), not the raw header.
    headers.set('x-request-id', context.requestId);
  }

  override async errorFromResponse(response: FetcherResponse): Promise<GraphQLError> {
    let errors: GraphQLFormattedError[] | undefined;
    try {
      const body: unknown = await this.parseBody(response);
      const list = typeof body === 'object' && body !== null ? (body as { errors?: unknown }).errors : undefined;
      if (isFormattedErrorList(list)) errors = list;
    } catch {
      // An unreadable body leaves only the status to report.
    }
    // RemoteGraphQLDataSource throws what this returns; process() below tells the kinds apart.
    return new SubgraphHttpError(response.status, response.statusText, errors);
  }

  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    try {
      return await super.process(options);
    } catch (err) {
      // A 4xx carrying GraphQL errors is the subgraph rejecting this operation, not being down:
      // its errors (with their codes) go to the client, named after the subgraph by the gateway.
      if (err instanceof SubgraphHttpError && err.status < 500 && err.graphqlErrors) return { errors: err.graphqlErrors };
      const reason = describeFailure(err, this.options.timeoutMs);
      const logger = isIncoming(options) ? options.context.logger : this.options.logger;
      logger.warn({ subgraph: this.options.name, url: this.url, reason }, 'subgraph request failed');
      throw subgraphUnavailable(this.options.name, reason);
    }
  }
}
