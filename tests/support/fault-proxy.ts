import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What the proxy does with the next requests: pass them on, answer a status itself, pass them on
 * after a delay (a slow subgraph), or pass them on and then drop the connection without an answer
 * (the subgraph did the work, the gateway never hears about it).
 */
export type Fault = { kind: 'pass' } | { kind: 'status'; status: number } | { kind: 'delay'; ms: number } | { kind: 'drop-after-forward' };

export interface FaultProxy {
  /** http://127.0.0.1:<proxy port>/graphql */
  url: string;
  set(fault: Fault): void;
  /** The bodies of every request it received, in order (whatever it did with them). */
  bodies(): string[];
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'keep-alive', 'transfer-encoding']);

/** An HTTP proxy in front of one service, whose behaviour a test switches (Fault). */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let fault: Fault = { kind: 'pass' };
  const bodies: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    bodies.push(body);
    const current = fault;
    if (current.kind === 'status') {
      res.writeHead(current.status, { 'content-type': 'text/plain' }).end('injected failure');
      return;
    }
    if (current.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, current.ms));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && !HOP_BY_HOP.has(name)) headers[name] = value;
    try {
      const answer = await fetch(`http://127.0.0.1:${targetPort}${req.url ?? '/'}`, { method: req.method ?? 'POST', headers, body: body || undefined });
      const text = await answer.text();
      if (current.kind === 'drop-after-forward') {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(text);
    } catch {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('target unreachable');
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    set(next) {
      fault = next;
    },
    bodies: () => [...bodies],
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
