// GET /debug/subscriptions: the gateway's subscription counters. They are operational data about
// every tenant's traffic, so only an admin may read them, with the credentials of any other
// request (a bearer JWT or an API key), in every environment: 401 without credentials, 403
// without the admin scope.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { sendJson, type RequestInfo, type Route } from '../../runtime/http.ts';
import type { GatewayContext } from '../context.ts';

export const STATS_PATH = '/debug/subscriptions';
const ADMIN_SCOPE = 'admin';

export function statsRoute(stats: () => unknown, context: (info: RequestInfo) => Promise<GatewayContext>): Route {
  return async (req: IncomingMessage, res: ServerResponse, info: RequestInfo) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== STATS_PATH) return false;
    let principal: GatewayContext['principal'];
    try {
      ({ principal } = await context(info));
    } catch (err) {
      // Refused credentials (401, or 503 when keys cannot be checked) or a spent budget (429).
      if (!(err instanceof GraphQLError)) throw err;
      const { http, code, ...extensions } = err.extensions as { http?: { status?: number; headers?: Map<string, string> }; code?: unknown };
      for (const [name, value] of http?.headers ?? []) res.setHeader(name, value);
      refuse(res, http?.status ?? 401, err.message, String(code ?? 'UNAUTHENTICATED'), extensions);
      return true;
    }
    if (principal.kind === 'anonymous') {
      refuse(res, 401, `${STATS_PATH} needs credentials with the ${ADMIN_SCOPE} scope`, 'UNAUTHENTICATED');
    } else if (!principal.scopes.includes(ADMIN_SCOPE)) {
      refuse(res, 403, `${STATS_PATH} needs the ${ADMIN_SCOPE} scope`, 'FORBIDDEN', { missingScopes: [ADMIN_SCOPE] });
    } else {
      sendJson(res, 200, stats());
    }
    return true;
  };
}

function refuse(res: ServerResponse, status: number, message: string, code: string, extensions: Record<string, unknown> = {}): void {
  sendJson(res, status, { errors: [{ message, extensions: { code, ...extensions } }] }, 'application/graphql-response+json');
}
