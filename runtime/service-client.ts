// One subgraph asking another, without the gateway in between: the orchestration subgraph checks
// an agent's status with the agents subgraph at claim time, the agents subgraph has governance
// mint an agent's credential. The callee trusts nothing but the identity token, so the caller
// signs one for the callee (the audience) with the tenant and subject of the request it is
// serving and only the scopes the question needs: a subgraph can never lend a caller more than
// it asked for, and a token for one subgraph is refused by every other.
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { request } from 'undici';
import { IDENTITY_HEADER, type IdentityClaims, type IdentityService } from './identity.ts';
import type { Logger } from './logger.ts';

export interface ServiceClientOptions {
  /** The subgraph asking, named in the identity's subject (`subgraph:<from>`) and in logs. */
  from: string;
  /** The subgraph asked: the audience of the identity token. */
  to: string;
  /**
   * Its GraphQL endpoint, or where to read it at each call; or the endpoints of its replicas,
   * tried in turn when one cannot be connected to (nothing was sent, so even a mutation is safe
   * to send to the next), starting with the last one that answered.
   */
  url: string | readonly string[] | (() => string);
  identity: IdentityService;
  logger: Logger;
  timeoutMs?: number;
}

/** Who the call acts for: the tenant of the request being served, and the scopes the call needs. */
export interface ServiceCaller {
  tenantId: string;
  /** The subject of the request being served, kept for the callee's records (e.g. createdBy). */
  onBehalfOf?: string | null;
  scopes: readonly string[];
  requestId?: string | null;
}

export interface ServiceClient {
  /**
   * The `data` of a GraphQL operation. GraphQL errors of the callee come back as they were (same
   * message and extensions, so a NOT_FOUND stays one); a callee that cannot be reached or answers
   * garbage is DEPENDENCY_UNAVAILABLE, naming it.
   */
  query<T>(caller: ServiceCaller, query: string, variables?: Record<string, unknown>): Promise<T>;
}

interface GraphQLBody<T> {
  data?: T | null;
  errors?: GraphQLFormattedError[];
}

/** Errors that mean no connection was made, so the request never left this process. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

function notConnected(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_CONNECTED.has(code)) return true;
    if (e instanceof AggregateError && e.errors.some(notConnected)) return true;
  }
  return false;
}

export function createServiceClient(options: ServiceClientOptions): ServiceClient {
  const configured = options.url;
  const urlsOf: () => readonly string[] =
    typeof configured === 'function' ? () => [configured()] : typeof configured === 'string' ? () => [configured] : () => configured;
  // The replica that answered last is asked first next time.
  let preferred = 0;
  const timeoutMs = options.timeoutMs ?? 5_000;

  function unavailable(reason: string, cause?: unknown): GraphQLError {
    options.logger.warn({ err: cause, subgraph: options.to }, `call to the ${options.to} subgraph failed: ${reason}`);
    return new GraphQLError(`The ${options.to} subgraph is unavailable; try again`, {
      extensions: { code: 'DEPENDENCY_UNAVAILABLE', serviceName: options.to, http: { status: 503 } },
    });
  }

  return {
    async query<T>(caller: ServiceCaller, query: string, variables: Record<string, unknown> = {}): Promise<T> {
      const claims: IdentityClaims = {
        kind: 'service',
        subject: caller.onBehalfOf ? `subgraph:${options.from}:${caller.onBehalfOf}` : `subgraph:${options.from}`,
        tenantId: caller.tenantId,
        scopes: caller.scopes,
        agentId: null,
      };
      const token = await options.identity.signIdentity(claims, options.to, caller.requestId ?? null);
      let status = 0;
      let body: GraphQLBody<T> | undefined;
      const urls = urlsOf();
      for (let i = 0; i < urls.length && body === undefined; i++) {
        const index = (preferred + i) % urls.length;
        try {
          const res = await request(urls[index]!, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'application/json',
              [IDENTITY_HEADER]: token,
              ...(caller.requestId ? { 'x-request-id': caller.requestId } : {}),
            },
            body: JSON.stringify({ query, variables }),
            headersTimeout: timeoutMs,
            bodyTimeout: timeoutMs,
          });
          status = res.statusCode;
          body = (await res.body.json()) as GraphQLBody<T>;
          preferred = index;
        } catch (err) {
          // Only a replica never reached is skipped: one that got the request may have acted on it.
          if (i + 1 < urls.length && notConnected(err)) continue;
          throw unavailable('no answer', err);
        }
      }
      if (body === undefined) throw unavailable('no answer');
      if (body.errors && body.errors.length > 0) {
        const [first] = body.errors;
        const code = first?.extensions?.code;
        // The callee refused for a reason of its own (bad input, not found): the caller's business.
        if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR' && code !== 'UNAUTHENTICATED') {
          throw new GraphQLError(first!.message, { extensions: { ...first!.extensions } });
        }
        throw unavailable(`HTTP ${status}: ${JSON.stringify(body.errors).slice(0, 500)}`);
      }
      if (status < 200 || status >= 300 || body.data === undefined || body.data === null) throw unavailable(`HTTP ${status} without data`);
      return body.data;
    },
  };
}
