// Inbound webhooks: POST /v1/hooks/{github|gitlab|standard}/{integrationId}, reached through the
// gateway (gateway/hooks-proxy.ts forwards the request as it came: the signature covers the raw
// bytes, and the sender proves itself with the integration's secret, not a platform token). A
// verified request is recorded by its delivery id (a second one with the same id is refused: 409)
// and published as an event of this subgraph (GitHubWebhookReceived...), which triggers and
// endpoints receive like any other.
// - GitHub: X-Hub-Signature-256 (HMAC-SHA256 of the body, @octokit/webhooks-methods), delivery id
//   X-GitHub-Delivery, event X-GitHub-Event.
// - GitLab: X-Gitlab-Token compared in constant time, delivery id X-Gitlab-Event-UUID (or
//   Idempotency-Key), event X-Gitlab-Event.
// - Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature checked by the
//   `standardwebhooks` package (5 minutes of timestamp tolerance), event: the body's `type`.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verify as verifyGitHub } from '@octokit/webhooks-methods';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { BodyTooLargeError, readBody, type Route } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { InboundProvider } from './domain.ts';
import type { InboundIntegrationRow, IntegrationsStore } from './store.ts';

const ROUTE = /^\/v1\/hooks\/(github|gitlab|standard)\/([0-9a-fA-F-]{36})$/;
const PROVIDER: Record<string, InboundProvider> = { github: 'GITHUB', gitlab: 'GITLAB', standard: 'STANDARD_WEBHOOKS' };

/** The gateway's problem types of these codes (gateway/rest/problem.ts); about:blank for the others. */
const TYPED: Record<string, string> = { WEBHOOK_SIGNATURE_INVALID: 'Webhook signature invalid', WEBHOOK_REPLAYED: 'Webhook replayed' };

function problem(res: ServerResponse, status: number, code: string, detail: string): void {
  const title = TYPED[code];
  const type = title ? `/problems/${code.toLowerCase().replace(/_/g, '-')}` : 'about:blank';
  const body = JSON.stringify({ type, title: title ?? code, status, detail, code, instance: res.req?.url ?? '' });
  res.writeHead(status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Equal strings in time independent of where they differ (hashes first: lengths leak nothing). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

interface Verified {
  deliveryId: string;
  event: string;
  body: unknown;
}

async function verified(integration: InboundIntegrationRow, req: IncomingMessage, raw: string): Promise<Verified | string> {
  switch (integration.provider) {
    case 'GITHUB': {
      const signature = header(req, 'x-hub-signature-256');
      if (!signature) return 'X-Hub-Signature-256 is missing';
      if (!(await verifyGitHub(integration.secret, raw, signature).catch(() => false))) return 'X-Hub-Signature-256 does not match the body';
      const deliveryId = header(req, 'x-github-delivery');
      if (!deliveryId) return 'X-GitHub-Delivery is missing';
      return { deliveryId, event: header(req, 'x-github-event') ?? 'unknown', body: parse(raw) };
    }
    case 'GITLAB': {
      const token = header(req, 'x-gitlab-token');
      if (!token || !constantTimeEqual(token, integration.secret)) return 'X-Gitlab-Token does not match';
      const deliveryId = header(req, 'x-gitlab-event-uuid') ?? header(req, 'idempotency-key');
      if (!deliveryId) return 'X-Gitlab-Event-UUID is missing';
      return { deliveryId, event: header(req, 'x-gitlab-event') ?? 'unknown', body: parse(raw) };
    }
    case 'STANDARD_WEBHOOKS': {
      try {
        const body = new Webhook(integration.secret).verify(raw, {
          'webhook-id': header(req, 'webhook-id') ?? '',
          'webhook-timestamp': header(req, 'webhook-timestamp') ?? '',
          'webhook-signature': header(req, 'webhook-signature') ?? '',
        }) as { type?: unknown };
        return { deliveryId: header(req, 'webhook-id') ?? '', event: typeof body?.type === 'string' ? body.type : 'unknown', body };
      } catch (err) {
        if (err instanceof WebhookVerificationError) return `Standard Webhooks verification failed: ${err.message}`;
        throw err;
      }
    }
  }
}

function parse(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return { raw: raw.slice(0, 65_536) };
  }
}

export function inboundRoute(opts: { store: IntegrationsStore; logger: Logger; maxBodyBytes: number; onReceived: (tenantId: string) => void }): Route {
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = ROUTE.exec(path);
    if (!m) return false;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      problem(res, 405, 'METHOD_NOT_ALLOWED', 'hooks accept POST only');
      return true;
    }
    const provider = PROVIDER[m[1] as string] as InboundProvider;
    const integration = await opts.store.inboundById((m[2] as string).toLowerCase());
    if (!integration || integration.provider !== provider) {
      problem(res, 404, 'NOT_FOUND', `no ${m[1]} integration ${m[2]}`);
      return true;
    }
    let raw: string;
    try {
      raw = await readBody(req, opts.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        problem(res, 413, 'PAYLOAD_TOO_LARGE', err.message);
        return true;
      }
      throw err;
    }
    const outcome = await verified(integration, req, raw);
    if (typeof outcome === 'string') {
      opts.logger.warn({ integrationId: integration.id, provider, reason: outcome }, 'inbound webhook refused');
      problem(res, 401, 'WEBHOOK_SIGNATURE_INVALID', outcome);
      return true;
    }
    const fresh = await opts.store.receiveInbound(integration, outcome.deliveryId.slice(0, 200), outcome.event.slice(0, 200), outcome.body);
    if (!fresh) {
      problem(res, 409, 'WEBHOOK_REPLAYED', `delivery ${outcome.deliveryId} was already received`);
      return true;
    }
    opts.onReceived(integration.tenantId);
    const body = JSON.stringify({ accepted: true, deliveryId: outcome.deliveryId, event: outcome.event });
    res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  };
}
