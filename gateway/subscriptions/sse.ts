// GraphQL over Server-Sent Events (the graphql-sse protocol) at /graphql/stream, for clients that
// cannot open WebSockets: a thin adapter over the core (execute.ts). The graphql-sse handler does
// the protocol; this route feeds it the request and writes its stream with a bounded buffer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { createHandler, type ExecutionResult, type Response as SseResponse } from 'graphql-sse';
import { BodyTooLargeError, readBody, sendJson, type RequestInfo, type Route } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { GatewayContext } from '../context.ts';
import type { GatewayOperations } from './execute.ts';

export interface SseTransportOptions {
  path: string;
  maxBodyBytes: number;
  maxBufferedBytes: number;
  context: (info: RequestInfo) => Promise<GatewayContext>;
  logger: Logger;
}

export interface SseTransport {
  route: Route;
  readonly connections: number;
}

interface Exchange {
  info: RequestInfo;
  res: ServerResponse;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

/** Errors the graphql-sse handler writes itself (malformed request...) get a code like ours. */
function withCodes(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: { extensions?: Record<string, unknown> }[] };
    if (!Array.isArray(parsed.errors)) return body;
    for (const e of parsed.errors) e.extensions = { code: 'BAD_REQUEST', ...e.extensions };
    return JSON.stringify(parsed);
  } catch {
    return body;
  }
}

export function createSseTransport(core: GatewayOperations, options: SseTransportOptions): SseTransport {
  const { logger } = options;
  let open = 0;

  const handler = createHandler<IncomingMessage, Exchange>({
    onSubscribe: async (req, params) => {
      const prepared = core.prepare(params);
      if (Array.isArray(prepared)) {
        // 400 unless the refusal names its status (trusted documents: 403, 404).
        const status = (prepared[0]?.extensions.http as { status?: unknown } | undefined)?.status;
        const response: SseResponse = [
          JSON.stringify({ errors: core.formatErrors(prepared) }),
          { status: typeof status === 'number' ? status : 400, statusText: 'Refused', headers: JSON_HEADERS },
        ];
        return response;
      }
      const { info, res } = req.context;
      let context: GatewayContext;
      try {
        context = await options.context(info);
      } catch (err) {
        // A caller the gateway refuses (credentials...) gets its status, as over HTTP.
        if (!(err instanceof GraphQLError)) throw err;
        const status = (err.extensions.http as { status?: unknown } | undefined)?.status;
        const response: SseResponse = [
          JSON.stringify({ errors: core.formatErrors([err]) }),
          { status: typeof status === 'number' ? status : 400, statusText: 'Refused', headers: JSON_HEADERS },
        ];
        return response;
      }
      info.operationName = prepared.operation.operationName;
      const authorized = await core.authorize(prepared, context);
      if (Array.isArray(authorized)) {
        const { status, headers } = refusalHead(authorized);
        const response: SseResponse = [
          JSON.stringify({ errors: core.formatErrors(authorized) }),
          { status, statusText: 'Refused', headers: { ...JSON_HEADERS, ...headers } },
        ];
        return response;
      }
      const outcome = await core.run(authorized, context, {
        onOverflow: () => {
          logger.warn({ requestId: info.requestId, reason: 'subscription queue full' }, 'SSE client too slow; closing its stream');
          res.destroy();
        },
      });
      // Results are already formatted; graphql-sse serialises them as they are. It recognises a
      // single result by its data key.
      if (outcome.kind === 'single') return { data: null, ...outcome.result } as ExecutionResult;
      return outcome.stream as AsyncGenerator<ExecutionResult>;
    },
  });

  async function write(res: ServerResponse, info: RequestInfo, body: AsyncGenerator<string, void, undefined>): Promise<void> {
    open += 1;
    const stop = () => void body.return(undefined);
    res.once('close', stop);
    try {
      for await (const chunk of body) {
        // Writes never wait for the client, so what a slow one has not read piles up here.
        if (res.writableLength > options.maxBufferedBytes) {
          logger.warn({ requestId: info.requestId, buffered: res.writableLength, reason: 'send buffer full' }, 'SSE client too slow; closing its stream');
          res.destroy();
          break;
        }
        res.write(chunk);
      }
    } finally {
      open -= 1;
      res.off('close', stop);
      if (!res.destroyed) res.end();
    }
  }

  const route: Route = async (req, res, info) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== options.path) return false;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > options.maxBodyBytes) {
      sendJson(res, 413, { errors: [{ message: `request body exceeds ${options.maxBodyBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
      return true;
    }
    let tooLarge = false;
    const [body, init] = await handler({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: { get: (key) => toHeader(req.headers[key]) },
      body: async () => {
        try {
          return await readBody(req, options.maxBodyBytes);
        } catch (err) {
          if (err instanceof BodyTooLargeError) tooLarge = true;
          throw err;
        }
      },
      raw: req,
      context: { info, res },
    });
    if (tooLarge) {
      sendJson(res, 413, { errors: [{ message: `request body exceeds ${options.maxBodyBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
      return true;
    }
    res.writeHead(init.status, init.statusText, init.headers);
    if (body === null || typeof body === 'string') {
      res.end(body === null ? undefined : init.status >= 400 ? withCodes(body) : body);
      return true;
    }
    await write(res, info, body);
    return true;
  };

  return {
    route,
    get connections() {
      return open;
    },
  };
}

const STATUS_BY_CODE: Record<string, number> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, RATE_LIMITED: 429, SERVICE_UNAVAILABLE: 503 };

/** The HTTP status (and headers, e.g. Retry-After) of a subscription the core refused to start. */
function refusalHead(errors: readonly GraphQLError[]): { status: number; headers: Record<string, string> } {
  const first = errors[0];
  const http = first?.extensions.http as { status?: unknown; headers?: Map<string, string> } | undefined;
  const headers: Record<string, string> = {};
  if (http?.headers) for (const [k, v] of http.headers) headers[k] = v;
  const code = typeof first?.extensions.code === 'string' ? first.extensions.code : '';
  const status = typeof http?.status === 'number' ? http.status : (STATUS_BY_CODE[code] ?? 400);
  return { status, headers };
}

function toHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
