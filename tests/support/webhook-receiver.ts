// A real HTTP receiver for webhook tests: verifies every request's Standard Webhooks signature
// with the `standardwebhooks` package (against every secret it was told), records what arrived,
// and answers as the test scripts it (a status per request, a Retry-After, or holding the request
// open until released).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: { type: string; timestamp: string; subjectId: string; data: Record<string, unknown> };
  /** The secrets (of those the receiver knows) whose signature verified. */
  verifiedWith: string[];
  at: number;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hold';

export interface WebhookReceiver {
  url: string;
  port: number;
  received: Received[];
  /** Requests whose signature no known secret verified. */
  rejected: number;
  secrets: string[];
  /** What the next requests get, in order; then 200. */
  script: Answer[];
  /** Answers every held request with 200. */
  releaseHeld(): void;
  held(): number;
  uniqueIds(): Set<string>;
  close(): Promise<void>;
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startReceiver(secrets: string[] = []): Promise<WebhookReceiver> {
  const heldResponses: ServerResponse[] = [];
  const state: WebhookReceiver = {
    url: '',
    port: 0,
    received: [],
    rejected: 0,
    secrets,
    script: [],
    releaseHeld() {
      for (const res of heldResponses.splice(0)) if (!res.destroyed) res.writeHead(200).end('ok');
    },
    held: () => heldResponses.length,
    uniqueIds: () => new Set(state.received.map((r) => r.id)),
    close: async () => {
      for (const res of heldResponses.splice(0)) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer(async (req, res) => {
    const raw = await readAll(req);
    const headers = {
      'webhook-id': String(req.headers['webhook-id'] ?? ''),
      'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
      'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
    };
    const verifiedWith = state.secrets.filter((s) => {
      try {
        new Webhook(s).verify(raw, headers);
        return true;
      } catch {
        return false;
      }
    });
    if (verifiedWith.length === 0) {
      state.rejected += 1;
      res.writeHead(401).end('bad signature');
      return;
    }
    state.received.push({
      id: headers['webhook-id'],
      timestamp: headers['webhook-timestamp'],
      signature: headers['webhook-signature'],
      body: JSON.parse(raw) as Received['body'],
      verifiedWith,
      at: Date.now(),
    });
    const answer = state.script.shift() ?? { status: 200 };
    if (answer === 'hold') {
      heldResponses.push(res);
      return;
    }
    res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}/hook`;
  return state;
}
