import { randomUUID } from 'node:crypto';
import { createServer, maxHeaderSize, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import { HeaderMap, type ApolloServer, type BaseContext, type HTTPGraphQLRequest, type HTTPGraphQLResponse } from '@apollo/server';
import type { Logger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { recordedTraceId, serviceContext, traceIncoming } from './tracing.ts';

/**
 * The node:http transport shared by every subgraph and the gateway: request ids, one JSON log
 * line per request, a body size limit, /healthz and /readyz, GraphQL through Apollo's
 * transport-neutral executeHTTPGraphQLRequest, and a graceful close that lets in-flight requests
 * finish. Extra routes (REST, docs) and WebSocket upgrades are added by the caller.
 */

export interface RequestInfo {
  requestId: string;
  headers: HeaderMap;
  /**
   * The client's address: the socket's peer, or with trustProxy the first X-Forwarded-For entry
   * (only a proxy the operator put in front can be trusted to set it).
   */
  remoteAddress: string;
  /** Set by the GraphQL handler so the access log names the operation. */
  operationName?: string | undefined;
  /** Set by a route that matched a template (REST), so metrics label requests by route, not raw path. */
  route?: string | undefined;
}

export type Route = (req: IncomingMessage, res: ServerResponse, info: RequestInfo) => Promise<boolean> | boolean;

export interface HttpServerOptions<C extends BaseContext> {
  logger: Logger;
  maxBodyBytes: number;
  graphqlPath?: string;
  apollo: ApolloServer<C>;
  context: (info: RequestInfo) => Promise<C>;
  /**
   * Throws when the service cannot serve (database unreachable...): 503. May return the state of
   * what it checked, shown under `checks` (a dependency the service can do without for a while
   * reported as degraded, still ready).
   */
  readiness: () => Promise<void> | Promise<Record<string, string>>;
  /** Tried in order before GraphQL; a route returns true when it handled the request. */
  routes?: Route[];
  /** Take the client address from X-Forwarded-For (behind a reverse proxy the operator runs). */
  trustProxy?: boolean;
  /** Answers GraphQL requests in place of apollo.executeHTTPGraphQLRequest (the gateway's prepared operations). */
  execute?: (request: HTTPGraphQLRequest, context: () => Promise<C>) => Promise<HTTPGraphQLResponse>;
  /**
   * The answer to a request Node's HTTP parser refused (too long, malformed), in the format of the
   * API its path belongs to; undefined for the GraphQL error format. The path is unknown when the
   * parser failed before the request line was read.
   */
  formatClientError?: (failure: ClientFailure) => { contentType: string; body: string } | undefined;
  /** Records every request's duration by route and status (runtime/metrics.ts). */
  metrics?: Pick<ServiceMetrics, 'observeRequest' | 'routeOf'>;
  /**
   * Admission control (the gateway's), asked before the routes for every request but the probes:
   * a permit (released when the answer is finished or the client gone), a refusal (answered at
   * once: 503 with Retry-After, in the format formatClientError gives the path), or undefined for
   * a request it does not gate.
   */
  admit?: (req: IncomingMessage, pathname: string) => Admitted | Refused | undefined | Promise<Admitted | Refused | undefined>;
  /** Also serve /healthz and /readyz on a listener of their own, which API traffic never queues behind. */
  healthPort?: number;
  /** Most open connections of the API port; more are dropped by Node as they arrive. */
  maxConnections?: number;
}

/** A request admitted: release() once it has finished (sample false: it says nothing of latency). */
export interface Admitted {
  release(sample?: boolean): void;
}

export interface Refused {
  refused: { status: number; code: string; message: string; retryAfterSeconds: number };
}

/** A request refused before it reached a handler: what the client is told. */
export interface ClientFailure {
  status: number;
  code: string;
  message: string;
  /** The request target's path, when the request line could be read. */
  path: string | undefined;
  requestId: string;
}

export interface RunningHttpServer {
  server: Server;
  port: number;
  url: string;
  /** The port of the probes' own listener (healthPort), when there is one. */
  healthPort?: number;
  /** Stops accepting, waits for in-flight requests up to timeoutMs, then drops what is left. */
  close(timeoutMs: number): Promise<void>;
}

export class BodyTooLargeError extends Error {}

export async function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new BodyTooLargeError(`request body exceeds ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new BodyTooLargeError(`request body exceeds ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': `${contentType}; charset=utf-8`, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function graphqlError(res: ServerResponse, status: number, message: string, code: string, traceId?: string): void {
  sendJson(res, status, { errors: [{ message, extensions: traceId ? { code, traceId } : { code } }] }, 'application/graphql-response+json');
}

/**
 * What Node's HTTP parser refused, as a status and code: a request head over --max-http-header-size
 * (431; 414 when the request line alone is that long), a head that did not arrive in time (408),
 * or bytes that are not HTTP/1.1 (400).
 */
export function classifyClientError(
  err: NodeJS.ErrnoException & { rawPacket?: unknown },
  maxHeaderBytes = maxHeaderSize,
): { status: number; code: string; message: string; path: string | undefined } {
  const raw = Buffer.isBuffer(err.rawPacket) ? err.rawPacket : undefined;
  // The request line, when this chunk starts with one: METHOD SP target SP ...
  const head = raw ? raw.subarray(0, 8192).toString('latin1') : '';
  const requestLine = /^[A-Z]{1,16} (\/[^ \r\n]*)/.exec(head);
  const path = requestLine ? requestLine[1]!.split('?')[0] : undefined;
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      // The parser counts the request line against the same limit as the header lines: when it
      // alone takes half of that or more, the target is what made the head too large.
      const lineEnd = raw ? raw.indexOf('\r\n') : -1;
      const lineLength = lineEnd === -1 ? (raw?.length ?? 0) : lineEnd;
      if (requestLine && lineLength >= maxHeaderBytes / 2) return { status: 414, code: 'URI_TOO_LONG', message: 'The request target is too long', path };
      return { status: 431, code: 'REQUEST_HEADER_FIELDS_TOO_LARGE', message: 'The request headers are too large', path };
    }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return { status: 408, code: 'REQUEST_TIMEOUT', message: 'The request did not arrive in time', path };
    default:
      return { status: 400, code: 'BAD_REQUEST', message: 'Malformed HTTP request', path };
  }
}

export function toHeaderMap(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers.set(key, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

/** A request target's path and query ("?..." or ""), as `new URL(target, base)` gives them. */
export function splitTarget(target: string): { pathname: string; search: string } {
  // The common case without building a WHATWG URL: a plain absolute path (no dot segments, percent
  // escapes, backslashes or "//") and a query of characters the URL parser keeps as they are.
  if (PLAIN_TARGET.test(target) && !DOT_SEGMENT.test(target)) {
    const q = target.indexOf('?');
    if (q === -1) return { pathname: target, search: '' };
    return { pathname: target.slice(0, q), search: q === target.length - 1 ? '' : target.slice(q) };
  }
  const url = new URL(target, 'http://localhost');
  return { pathname: url.pathname, search: url.search };
}

const PLAIN_TARGET = /^\/(?!\/)[A-Za-z0-9\-._~!$&()*+,;=:@/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%[\]{}|^`\\]*)?$/;
const DOT_SEGMENT = /\/\.\.?(?:[/?]|$)/;

/** The client address of a request (see RequestInfo.remoteAddress). */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first.slice(0, 64);
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * During a drain, how long a connection may stay idle before it is closed. Every answer given
 * during a drain closes its connection, so what is still idle after this was idle before the
 * drain began.
 */
export const DRAIN_QUIET_MS = 250;

export async function startHttpServer<C extends BaseContext>(opts: HttpServerOptions<C>, listen: { host: string; port: number }): Promise<RunningHttpServer> {
  const graphqlPath = opts.graphqlPath ?? '/graphql';
  let draining = false;
  // Answers not yet sent when a drain begins still get Connection: close (see close()).
  const inFlight = new Set<ServerResponse>();

  async function handleGraphQL(req: IncomingMessage, res: ServerResponse, info: RequestInfo, search: string): Promise<void> {
    let body: unknown;
    if (req.method === 'POST') {
      let raw: string;
      try {
        raw = await readBody(req, opts.maxBodyBytes);
      } catch (err) {
        if (err instanceof BodyTooLargeError) return graphqlError(res, 413, err.message, 'PAYLOAD_TOO_LARGE');
        throw err;
      }
      const type = req.headers['content-type'] ?? '';
      if (type.includes('json')) {
        try {
          body = raw === '' ? {} : JSON.parse(raw);
        } catch (err) {
          return graphqlError(res, 400, `Malformed JSON body: ${(err as Error).message}`, 'BAD_REQUEST');
        }
        if (body && typeof body === 'object' && !Array.isArray(body)) {
          const name = (body as { operationName?: unknown }).operationName;
          if (typeof name === 'string') info.operationName = name;
        }
      } else {
        body = raw;
      }
    } else {
      info.operationName = new URLSearchParams(search).get('operationName') ?? undefined;
    }
    const httpGraphQLRequest: HTTPGraphQLRequest = { method: req.method ?? 'GET', headers: info.headers, search, body };
    const context = () => opts.context(info);
    const response = opts.execute
      ? await opts.execute(httpGraphQLRequest, context)
      : await opts.apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest, context });
    const headers: Record<string, string | number> = {};
    for (const [k, v] of response.headers) headers[k] = v;
    if (response.body.kind === 'complete') {
      // With its length, the answer goes out in one write; without, writeHead commits to chunked
      // encoding (more bytes, and more writes for this side and more parsing for the client's).
      const text = response.body.string;
      headers['content-length'] = Buffer.byteLength(text);
      res.writeHead(response.status ?? 200, headers);
      res.end(text);
      return;
    }
    res.writeHead(response.status ?? 200, headers);
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  /** /healthz and /readyz, on the API port and on the probes' own one. */
  async function probe(pathname: string, res: ServerResponse): Promise<boolean> {
    if (pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return true;
    }
    if (pathname !== '/readyz') return false;
    if (draining) {
      sendJson(res, 503, { status: 'draining' });
      return true;
    }
    try {
      const checks = await opts.readiness();
      sendJson(res, 200, checks ? { status: 'ready', checks } : { status: 'ready' });
    } catch (err) {
      sendJson(res, 503, { status: 'unavailable', reason: (err as Error).message });
    }
    return true;
  }

  function refuse(res: ServerResponse, refusal: Refused['refused'], path: string, requestId: string): void {
    const { status, code, message, retryAfterSeconds } = refusal;
    const formatted = opts.formatClientError?.({ status, code, message, path, requestId });
    res.setHeader('retry-after', String(retryAfterSeconds));
    if (formatted) {
      res.writeHead(status, { 'content-type': formatted.contentType, 'content-length': Buffer.byteLength(formatted.body) });
      res.end(formatted.body);
    } else graphqlError(res, status, message, code);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && /^[\w.:-]{1,128}$/.test(incomingId) ? incomingId : randomUUID();
    res.setHeader('x-request-id', requestId);
    if (draining) res.setHeader('connection', 'close');
    else {
      inFlight.add(res);
      res.once('close', () => inFlight.delete(res));
    }
    const info: RequestInfo = { requestId, headers: toHeaderMap(req), remoteAddress: clientAddress(req, opts.trustProxy ?? false) };
    const { pathname, search } = splitTarget(req.url ?? '/');
    res.on('finish', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      opts.metrics?.observeRequest(req.method, opts.metrics.routeOf(pathname, info, graphqlPath), res.statusCode, durationMs / 1000);
      opts.logger.info(
        {
          requestId,
          method: req.method,
          path: pathname,
          status: res.statusCode,
          durationMs: Math.round(durationMs * 100) / 100,
          operationName: info.operationName,
        },
        'request',
      );
    });
    try {
      if (await probe(pathname, res)) return;
      if (opts.admit) {
        const admitted = await opts.admit(req, pathname);
        if (admitted && 'refused' in admitted) return refuse(res, admitted.refused, pathname, requestId);
        // 'close' comes after 'finish', or alone when the client left first: then no latency sample.
        if (admitted) res.once('close', () => admitted.release(res.writableFinished));
      }
      for (const route of opts.routes ?? []) {
        if (await route(req, res, info)) return;
      }
      if (pathname === graphqlPath) return await handleGraphQL(req, res, info, search);
      sendJson(res, 404, { error: 'not found', path: pathname });
    } catch (err) {
      opts.logger.error({ err, requestId }, 'unhandled request error');
      if (!res.headersSent) graphqlError(res, 500, `Internal server error (request id ${requestId})`, 'INTERNAL_SERVER_ERROR', recordedTraceId());
      else res.destroy();
    }
  }

  // One SERVER span per request when tracing is on (child of the client's traceparent).
  const tracing = serviceContext();
  const server = createServer((req, res) => void traceIncoming(req, res, () => handle(req, res), tracing));
  // Node answers what its parser refuses with a bare status line and no body; clients get the
  // API's own error format instead (and never a stack), then the connection is closed, as the
  // parser cannot find the next request's start.
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket) => {
    // The client is gone, or a response is already on the wire: nothing can be said any more.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const requestId = randomUUID();
    const failure: ClientFailure = { ...classifyClientError(err), requestId };
    opts.logger.info({ requestId, status: failure.status, reason: err.code ?? err.message, path: failure.path }, 'request refused by the HTTP parser');
    const formatted = opts.formatClientError?.(failure) ?? {
      contentType: 'application/json; charset=utf-8',
      body: JSON.stringify({ errors: [{ message: failure.message, extensions: { code: failure.code } }] }),
    };
    const reason = STATUS_CODES[failure.status] ?? 'Error';
    socket.end(
      `HTTP/1.1 ${failure.status} ${reason}\r\ncontent-type: ${formatted.contentType}\r\ncontent-length: ${Buffer.byteLength(formatted.body)}\r\n` +
        `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n${formatted.body}`,
    );
  });
  // Keep-alive longer than typical client pools' idle timeouts, so clients do not race a close.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  if (opts.maxConnections) server.maxConnections = opts.maxConnections;
  await listenOn(server, listen.port, listen.host);
  const port = (server.address() as AddressInfo).port;
  // The probes' own listener: no routes, no admission, nothing to wait behind.
  let healthServer: Server | undefined;
  if (opts.healthPort !== undefined) {
    healthServer = createServer((req, res) => {
      void probe(splitTarget(req.url ?? '/').pathname, res).then((served) => {
        if (!served) sendJson(res, 404, { error: 'not found: this port serves /healthz and /readyz only' });
      });
    });
    try {
      await listenOn(healthServer, opts.healthPort, listen.host);
    } catch (err) {
      server.close();
      throw err;
    }
  }
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? 'localhost' : listen.host;

  return {
    server,
    port,
    url: `http://${host}:${port}${graphqlPath}`,
    ...(healthServer ? { healthPort: (healthServer.address() as AddressInfo).port } : {}),
    async close(timeoutMs: number) {
      draining = true;
      // A keep-alive client whose request is in flight learns from its answer that this
      // connection ends there, instead of finding it reset when it sends the next request.
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
      inFlight.clear();
      // Stop accepting connections, but not through http's server.close(): that also closes every
      // connection idle at this instant, and a busy keep-alive client is idle for the moment
      // between an answer and its next request, which it may already have sent: a reset.
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      // From now on every answer closes its connection. What stays idle past DRAIN_QUIET_MS was
      // idle before the drain began: nobody is about to use it.
      const sweep = setInterval(() => server.closeIdleConnections(), DRAIN_QUIET_MS);
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      // Probes answer 503 draining until the API port is closed, then the probes' port goes too.
      if (healthServer) {
        const probes = healthServer;
        const closedProbes = new Promise<void>((resolve) => probes.close(() => resolve()));
        probes.closeAllConnections();
        await closedProbes;
      }
    },
  };
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
