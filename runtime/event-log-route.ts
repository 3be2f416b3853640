// A subgraph's retained events over HTTP, for another subgraph that consumes them durably (the
// integrations subgraph feeds its webhook queue from here): `GET /events?after=<sequence>&limit=<n>`
// answers the caller's tenant's events after that sequence, oldest first, and the tenant's head.
// Only a signed service identity for this subgraph (runtime/service-client.ts's tokens) is served;
// the gateway never routes here. Generic: no domain logic.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, type Route } from './http.ts';
import { IDENTITY_HEADER, IdentityError, type IdentityService } from './identity.ts';
import type { EventLog } from './outbox.ts';

export const EVENT_LOG_PATH = '/events';
const MAX_LIMIT = 1000;

export function eventLogRoute(opts: { log: EventLog; identity: IdentityService; audience: string }): Route {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://subgraph');
    if (url.pathname !== EVENT_LOG_PATH) return false;
    if (req.method !== 'GET') {
      sendJson(res, 405, { error: 'GET only' });
      return true;
    }
    const header = req.headers[IDENTITY_HEADER];
    let tenantId: string | null;
    try {
      const identity = await opts.identity.verifyIdentity(Array.isArray(header) ? header[0] : header, opts.audience);
      // A subgraph's service identity (or the development identity): never a client's.
      if (identity.signed && identity.kind !== 'service') {
        sendJson(res, 403, { error: 'the event log is served to other subgraphs only' });
        return true;
      }
      tenantId = identity.tenantId;
    } catch (err) {
      if (!(err instanceof IdentityError)) throw err;
      sendJson(res, 401, { error: err.message });
      return true;
    }
    const after = Number(url.searchParams.get('after') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '500');
    if (!tenantId || !Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      sendJson(res, 400, { error: `a tenant, after >= 0 and 1 <= limit <= ${MAX_LIMIT} are required` });
      return true;
    }
    const head = await opts.log.head(tenantId);
    // 'expired': some events after `after` were pruned; the consumer learns it and skips ahead.
    const resume = await opts.log.checkResume(tenantId, Math.min(after, head));
    const events = await opts.log.read(tenantId, { after, limit });
    sendJson(res, 200, { head, resume, events });
    return true;
  };
}
