// Inbound webhooks (POST /v1/hooks/...) pass through the gateway to the integrations subgraph as
// they came. They are not REST facade routes: those map a JSON body onto a GraphQL operation for
// a caller the gateway authenticated, while a webhook sender authenticates with a signature over
// the raw bytes (GitHub, Standard Webhooks) or a token (GitLab) that only the integrations
// subgraph can check, against the integration's secret. So the gateway forwards the bytes and the
// headers the checks need, and answers what the subgraph answers. Its own auth, rate limits and
// the GraphQL/REST machinery are not involved; the subgraph bounds the body and refuses replays.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import type { Logger } from '../runtime/logger.ts';
import type { Route } from '../runtime/http.ts';

export const HOOKS_PREFIX = '/v1/hooks/';

/** Request headers the subgraph's checks read; nothing else (never the gateway identity header) is forwarded. */
const FORWARDED = [
  'content-type',
  'user-agent',
  'x-hub-signature-256',
  'x-github-delivery',
  'x-github-event',
  'x-gitlab-token',
  'x-gitlab-event',
  'x-gitlab-event-uuid',
  'idempotency-key',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'x-request-id',
];

export function hooksProxyRoute(opts: { subgraphUrl: () => string | undefined; maxBodyBytes: number; timeoutMs: number; logger: Logger }): Route {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    if (!path.startsWith(HOOKS_PREFIX)) return false;
    const target = opts.subgraphUrl();
    const send = (status: number, detail: string) => {
      const body = JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status, detail, code: 'DEPENDENCY_UNAVAILABLE' });
      res.writeHead(status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (!target) {
      send(503, 'no integrations subgraph is routed');
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > opts.maxBodyBytes) {
        const body = JSON.stringify({
          type: 'about:blank',
          title: 'Content Too Large',
          status: 413,
          detail: `body exceeds ${opts.maxBodyBytes} bytes`,
          code: 'PAYLOAD_TOO_LARGE',
        });
        res.writeHead(413, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
        res.end(body);
        return true;
      }
      chunks.push(chunk as Buffer);
    }
    const headers: Record<string, string> = {};
    for (const name of FORWARDED) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    try {
      const upstream = await request(`${target.replace(/\/graphql\/?$/, '')}${path}`, {
        method: (req.method ?? 'POST') as 'POST',
        headers,
        body: req.method === 'GET' || req.method === 'HEAD' ? null : Buffer.concat(chunks),
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
      });
      const body = Buffer.from(await upstream.body.arrayBuffer());
      const type = upstream.headers['content-type'];
      res.writeHead(upstream.statusCode, {
        ...(typeof type === 'string' ? { 'content-type': type } : {}),
        'content-length': body.length,
      });
      res.end(body);
    } catch (err) {
      opts.logger.warn({ err }, 'forwarding an inbound webhook to the integrations subgraph failed');
      send(503, 'the integrations subgraph is unavailable; the sender should retry');
    }
    return true;
  };
}
