// GraphQL over WebSocket (the graphql-transport-ws protocol of the graphql-ws library) on the
// gateway's /graphql, same port as HTTP: a thin adapter over the core (execute.ts).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import { toHeaderMap, type RequestInfo } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { GatewayContext } from '../context.ts';
import type { GatewayOperations, PreparedOperation } from './execute.ts';

/** Close code for a client that fell behind (RFC 6455 1013, "try again later"). */
export const SLOW_CONSUMER_CLOSE_CODE = 1013;

export interface WebSocketTransportOptions {
  path: string;
  keepAliveMs: number;
  maxBufferedBytes: number;
  maxPayloadBytes: number;
  context: (info: RequestInfo) => Promise<GatewayContext>;
  logger: Logger;
}

export interface WebSocketTransport {
  attach(server: Server): void;
  readonly connections: number;
  /** Closes every socket with 1001 (going away); sockets that do not answer are cut after timeoutMs. */
  close(timeoutMs: number): Promise<void>;
}

/** What onSubscribe hands to execute/subscribe through graphql-ws's ExecutionArgs. */
class SocketOperation {
  constructor(
    readonly prepared: PreparedOperation,
    readonly context: GatewayContext,
    readonly socket: WebSocket,
  ) {}
}

export function createWebSocketTransport(core: GatewayOperations, options: WebSocketTransportOptions): WebSocketTransport {
  const { logger } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes });
  let server: Server | undefined;
  let closing = false;

  function dropSlow(socket: WebSocket, why: Record<string, unknown>): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    logger.warn({ ...why, code: SLOW_CONSUMER_CLOSE_CODE }, 'WebSocket client too slow; closing its connection');
    socket.close(SLOW_CONSUMER_CLOSE_CODE, 'consumer too slow');
  }

  async function run(contextValue: unknown) {
    if (!(contextValue instanceof SocketOperation)) throw new Error('operation without its SocketOperation');
    const { prepared, context, socket } = contextValue;
    const outcome = await core.run(prepared, context, {
      onOverflow: () => dropSlow(socket, { requestId: context.requestId, reason: 'subscription queue full' }),
    });
    // Results are already formatted (GraphQLFormattedError); onNext below sends them unchanged.
    return (outcome.kind === 'single' ? outcome.result : outcome.stream) as ExecutionResult | AsyncGenerator<ExecutionResult>;
  }

  const graphqlWs = useServer(
    {
      onSubscribe: async (ctx, id, payload) => {
        const prepared = core.prepare(payload);
        if (Array.isArray(prepared)) return prepared;
        let context: GatewayContext;
        try {
          context = await options.context({ requestId: randomUUID(), headers: toHeaderMap(ctx.extra.request) });
        } catch (err) {
          // A caller the gateway refuses (credentials...) is told so like any refused operation.
          if (err instanceof GraphQLError) return [err];
          throw err;
        }
        context.logger.info({ transport: 'ws', id, operationName: prepared.operation.operationName, kind: prepared.operation.operation.operation }, 'operation');
        const { operation } = prepared;
        return {
          schema: prepared.supergraph.apiSchema,
          document: operation.document,
          operationName: operation.operationName,
          variableValues: operation.variables,
          contextValue: new SocketOperation(prepared, context, ctx.extra.socket),
        };
      },
      execute: (args) => run(args.contextValue),
      subscribe: (args) => run(args.contextValue),
      onNext: (ctx, _id, _payload, _args, result) => {
        const socket = ctx.extra.socket;
        if (socket.bufferedAmount > options.maxBufferedBytes) dropSlow(socket, { bufferedAmount: socket.bufferedAmount, reason: 'send buffer full' });
        return result;
      },
      onError: (_ctx, _id, _payload, errors) => core.formatErrors(errors),
    },
    wss,
    options.keepAliveMs,
  );

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== options.path || closing) {
      socket.end(`HTTP/1.1 ${closing ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  }

  return {
    attach(httpServer) {
      server = httpServer;
      httpServer.on('upgrade', onUpgrade);
    },
    get connections() {
      return wss.clients.size;
    },
    async close(timeoutMs) {
      closing = true;
      const timer = setTimeout(() => wss.clients.forEach((s) => s.terminate()), timeoutMs);
      timer.unref();
      await graphqlWs.dispose();
      clearTimeout(timer);
      server?.off('upgrade', onUpgrade);
    },
  };
}
