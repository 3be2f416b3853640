// Who is calling and how much they may still do: every gateway transport (GraphQL over HTTP, REST,
// SSE, graphql-ws) builds its request context here, so they all authenticate and count alike.
import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_RULE, isValidIdempotencyKey } from '../runtime/idempotency.ts';
import type { RequestInfo } from '../runtime/http.ts';
import type { Logger } from '../runtime/logger.ts';
import type { ApiKeyVerifier } from './auth/api-keys.ts';
import { readCredentials, type Credentials } from './auth/credentials.ts';
import type { JwtVerifier } from './auth/jwt.ts';
import { ANONYMOUS, AuthError, type Principal } from './auth/principal.ts';
import { principalKey, rateLimitedError, rateLimitHeaders, type Budget, type RateLimiter } from './limits/rate-limit.ts';

/**
 * Per-request state of the gateway. The data sources read it to pass the request id, the
 * configured client headers and the caller's identity (signed) on to the subgraphs.
 */
export interface GatewayContext {
  requestId: string;
  /** The client request's headers, names lower-cased. */
  headers: HeaderMap;
  logger: Logger;
  /** Who is calling, after the credentials were checked; ANONYMOUS without any. */
  principal: Principal;
  /** The client's address (budgets of anonymous callers). */
  remoteAddress: string;
  /** RateLimit-* response headers for what is left of the caller's HTTP budget. */
  rateLimitHeaders?: Record<string, string>;
}

export interface Admission {
  /** RATE_LIMITED (extensions.http: 429 with Retry-After) when the budget is spent. */
  refused: GraphQLError | null;
  /** The RateLimit-* headers of the decision. */
  headers: Record<string, string>;
}

export interface Authenticator {
  /** The principal of the credentials; throws AuthError (401, or 503 when keys cannot be checked). */
  authenticate(credentials: Credentials, requestId: string): Promise<Principal>;
  /** Counts one request against the caller's budget. */
  admit(budget: Budget, principal: Principal, remoteAddress: string): Promise<Admission>;
}

export function createAuthenticator(deps: { jwt: JwtVerifier; apiKeys: ApiKeyVerifier; rateLimiter: RateLimiter }): Authenticator {
  return {
    async authenticate(credentials, requestId) {
      if (credentials.kind === 'bearer') return deps.jwt.verify(credentials.token);
      if (credentials.kind === 'apiKey') return deps.apiKeys.verify(credentials.key, requestId);
      return ANONYMOUS;
    },
    async admit(budget, principal, remoteAddress) {
      const decision = await deps.rateLimiter.consume(budget, principalKey(principal, remoteAddress));
      const headers = rateLimitHeaders(decision);
      if (decision.allowed) return { refused: null, headers };
      const error = rateLimitedError(decision, budget);
      error.extensions.http = { status: 429, headers: new HeaderMap(Object.entries(headers)) };
      return { refused: error, headers };
    },
  };
}

/**
 * The context of one HTTP request (GraphQL, REST, SSE): credentials from its headers, then one
 * unit of the caller's HTTP budget. Refusals are coded GraphQLErrors whose extensions.http give
 * Apollo (and the REST and SSE adapters) the status and headers: 401, 503 or 429 with Retry-After.
 */
export async function createGatewayContext(info: RequestInfo, logger: Logger, auth: Authenticator): Promise<GatewayContext> {
  const idempotencyKey = info.headers.get(IDEMPOTENCY_KEY_HEADER);
  if (idempotencyKey !== undefined && !isValidIdempotencyKey(idempotencyKey))
    throw new GraphQLError(IDEMPOTENCY_KEY_RULE, { extensions: { code: 'BAD_USER_INPUT', header: 'Idempotency-Key', http: { status: 400 } } });
  let principal: Principal;
  try {
    principal = await auth.authenticate(
      readCredentials((name) => info.headers.get(name)),
      info.requestId,
    );
  } catch (err) {
    if (err instanceof AuthError) throw err.toGraphQLError();
    throw err;
  }
  const { refused, headers } = await auth.admit('http', principal, info.remoteAddress);
  if (refused) throw refused;
  // Assigned, not spread into a new object: on Node 20 a spread followed by more properties costs microseconds.
  const context = contextFor(info, logger, principal);
  context.rateLimitHeaders = headers;
  return context;
}

/** A context for a caller already authenticated (a graphql-ws connection's). */
export function contextFor(info: Pick<RequestInfo, 'requestId' | 'headers' | 'remoteAddress'>, logger: Logger, principal: Principal): GatewayContext {
  const child = logger.child(
    principal.kind === 'anonymous' ? { requestId: info.requestId } : { requestId: info.requestId, tenantId: principal.tenantId, subject: principal.subject },
  );
  return { requestId: info.requestId, headers: info.headers, logger: child, principal, remoteAddress: info.remoteAddress };
}

/** Adds the RateLimit-* headers of the request's budget to every response Apollo sends (GraphQL and REST). */
export function rateLimitHeadersPlugin(): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response }) {
          for (const [name, value] of Object.entries(contextValue.rateLimitHeaders ?? {})) response.http.headers.set(name, value);
        },
      };
    },
  };
}
