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
import { traceHeaders } from './tracing.ts';

export interface ServiceClientOptions {
  /** The subgraph asking, named in the identity's subject (`subgraph:<from>`) and in logs. */
  from: string;
  /** The subgraph asked: the audience of the identity token. */
  to: string;
  /** Its GraphQL endpoint, or where to read it at each call. */
  url: string | (() => string);
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

export function createServiceClient(options: ServiceClientOptions): ServiceClient {
  const urlOf = typeof options.url === 'function' ? options.url : () => options.url as string;
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
      let status: number;
      let body: GraphQLBody<T>;
      try {
        const res = await request(urlOf(), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            [IDENTITY_HEADER]: token,
            ...(caller.requestId ? { 'x-request-id': caller.requestId } : {}),
            // The calling request's trace continues in the callee (nothing when tracing is off).
            ...traceHeaders(),
          },
          body: JSON.stringify({ query, variables }),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        status = res.statusCode;
        body = (await res.body.json()) as GraphQLBody<T>;
      } catch (err) {
        throw unavailable('no answer', err);
      }
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
