// GraphQL over WebSocket (the graphql-transport-ws protocol of the graphql-ws library) on the
// gateway's /graphql, same port as HTTP: a thin adapter over the core (execute.ts).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import { clientAddress, toHeaderMap } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import { credentialsFromConnectionParams, readCredentials, type Credentials } from '../auth/credentials.ts';
import { AuthError, type Principal } from '../auth/principal.ts';
import { contextFor, type Authenticator, type GatewayContext } from '../context.ts';
import type { GatewayOperations, PreparedOperation } from './execute.ts';
import { tracedOperation } from '../tracing.ts';

/** Close code for a client that fell behind (RFC 6455 1013, "try again later"). */
export const SLOW_CONSUMER_CLOSE_CODE = 1013;
/** connection_init without credentials, or the connection's credentials expired (graphql-ws convention). */
export const UNAUTHORIZED_CLOSE_CODE = 4401;
/** connection_init with credentials the gateway does not accept. */
export const FORBIDDEN_CLOSE_CODE = 4403;
/** The credentials could not be checked right now (identity provider or key store unreachable). */
const TRY_AGAIN_CLOSE_CODE = 1013;

export interface WebSocketTransportOptions {
  path: string;
  keepAliveMs: number;
  maxBufferedBytes: number;
  maxPayloadBytes: number;
  authenticator: Authenticator;
  /** Client addresses from X-Forwarded-For. */
  trustProxy: boolean;
  /** Admission control: while true, new connections are closed with 1013 and new operations refused (OVERLOADED). */
  overloaded: () => boolean;
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
  /** The traced transport's span finds the upgrade request's headers (traceparent) here. */
  get headers() {
    return this.context.headers;
  }

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
  // Who each connection authenticated as in connection_init.
  const principals = new WeakMap<WebSocket, Principal>();

  /** connection_init's credentials, else (for non-browser clients) the upgrade request's headers. */
  function credentialsOf(params: Readonly<Record<string, unknown>> | undefined, request: IncomingMessage): Credentials {
    const fromParams = credentialsFromConnectionParams(params);
    if (fromParams.kind !== 'none') return fromParams;
    const headers = toHeaderMap(request);
    return readCredentials((name) => headers.get(name));
  }

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
      // The socket is the session: its credentials are checked once, here; every operation on it
      // acts as that caller. Refused: closed with 4401 (none) or 4403 (not accepted).
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        const requestId = randomUUID();
        if (options.overloaded()) {
          socket.close(TRY_AGAIN_CLOSE_CODE, 'Overloaded: try again later');
          return false;
        }
        try {
          const credentials = credentialsOf(ctx.connectionParams, ctx.extra.request);
          if (credentials.kind === 'none') {
            socket.close(UNAUTHORIZED_CLOSE_CODE, 'Unauthorized: send a token (or apiKey) in connection_init');
            return false;
          }
          principals.set(socket, await options.authenticator.authenticate(credentials, requestId));
          return true;
        } catch (err) {
          if (!(err instanceof AuthError)) throw err;
          logger.info({ requestId, reason: err.reason }, 'WebSocket connection refused');
          if (err.status === 503) socket.close(TRY_AGAIN_CLOSE_CODE, 'Credentials cannot be checked right now');
          else socket.close(FORBIDDEN_CLOSE_CODE, `Forbidden: ${err.reason}`.slice(0, 120));
          return false;
        }
      },
      onSubscribe: async (ctx, id, payload) => {
        const socket = ctx.extra.socket;
        const principal = principals.get(socket);
        if (!principal) return [new GraphQLError('Not authenticated', { extensions: { code: 'UNAUTHENTICATED' } })];
        if (principal.expiresAt && principal.expiresAt.getTime() <= Date.now()) {
          socket.close(UNAUTHORIZED_CLOSE_CODE, 'Unauthorized: the token expired');
          return [new GraphQLError('The credentials of this connection expired', { extensions: { code: 'UNAUTHENTICATED', reason: 'expired' } })];
        }
        if (options.overloaded())
          return [new GraphQLError('The gateway is overloaded: try again later', { extensions: { code: 'OVERLOADED', retryAfterSeconds: 1 } })];
        const prepared = core.prepare(payload);
        if (Array.isArray(prepared)) return prepared;
        const request = ctx.extra.request;
        const context = contextFor(
          { requestId: randomUUID(), headers: toHeaderMap(request), remoteAddress: clientAddress(request, options.trustProxy) },
          logger,
          principal,
        );
        const kind = prepared.operation.operation.operation;
        // Queries and mutations count like HTTP requests; subscription starts are counted by authorize().
        if (kind !== 'subscription') {
          const { refused } = await options.authenticator.admit('http', principal, context.remoteAddress);
          if (refused) return [refused];
        }
        const authorized = await core.authorize(prepared, context);
        if (Array.isArray(authorized)) return authorized;
        context.logger.info({ transport: 'ws', id, operationName: prepared.operation.operationName, kind }, 'operation');
        const { operation } = authorized;
        return {
          schema: authorized.supergraph.apiSchema,
          document: operation.document,
          operationName: operation.operationName,
          variableValues: operation.variables,
          contextValue: new SocketOperation(authorized, context, socket),
        };
      },
      execute: (args) => tracedOperation('graphql-ws', args, args.contextValue, () => run(args.contextValue)),
      subscribe: (args) => tracedOperation('graphql-ws', args, args.contextValue, () => run(args.contextValue)),
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
      const timer = setTimeout(() => {
        for (const s of wss.clients) s.terminate();
      }, timeoutMs);
      timer.unref();
      await graphqlWs.dispose();
      clearTimeout(timer);
      server?.off('upgrade', onUpgrade);
    },
  };
}
