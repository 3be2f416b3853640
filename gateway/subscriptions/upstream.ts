// Subscriptions from the gateway to the subgraphs, over graphql-ws: one multiplexed connection per
// subgraph URL, opened on demand. Nothing retries behind the client's back: a subgraph that goes
// away ends the subscriptions it carried (their clients are told and may subscribe again), since
// events published while nobody listened are gone and a silent reconnect would hide that.
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { upstreamSubscribeSpan } from '../tracing.ts';
import WebSocket from 'ws';
import type { Logger } from '../../runtime/logger.ts';

export interface UpstreamRequest {
  query: string;
  operationName: string | undefined;
  variables: Record<string, unknown>;
  /** Carries the forwarded client headers (a shared connection has no per-operation headers). */
  extensions: Record<string, unknown>;
}

export interface UpstreamSink {
  next(result: FormattedExecutionResult): void;
  /** The subgraph refused or ended the subscription with errors, or the connection failed. */
  error(failure: UpstreamFailure): void;
  complete(): void;
}

/** Why an upstream subscription ended: the subgraph's own errors, or an unreachable subgraph. */
export type UpstreamFailure = { kind: 'errors'; errors: GraphQLFormattedError[] } | { kind: 'unavailable'; reason: string };

export interface UpstreamOptions {
  /** graphql-ws ping interval; a pong missing for timeoutMs drops the connection. 0 = none. */
  keepAliveMs: number;
  /** Longest wait for the connection to be acknowledged and for a pong. */
  timeoutMs: number;
  logger: Logger;
}

/** ws://… for http://…, wss://… for https://…: graphql-ws is served on the subgraph's GraphQL URL. */
export function webSocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

function isFormattedErrors(value: unknown): value is GraphQLFormattedError[] {
  return Array.isArray(value) && value.every((e) => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string');
}

/** An operator-readable cause from what graphql-ws reports (ws ErrorEvent, CloseEvent, Error). */
export function describeUpstreamFailure(err: unknown): UpstreamFailure {
  if (isFormattedErrors(err) && err.length > 0) return { kind: 'errors', errors: err };
  if (typeof err === 'object' && err !== null) {
    const { code, reason, message } = err as { code?: unknown; reason?: unknown; message?: unknown };
    if (typeof code === 'number') {
      const text = typeof reason === 'string' && reason !== '' ? ` ${reason}` : code === 1006 ? ' abnormal closure' : '';
      return { kind: 'unavailable', reason: `connection closed (${code}${text})` };
    }
    if (typeof message === 'string' && message !== '') return { kind: 'unavailable', reason: message };
  }
  return { kind: 'unavailable', reason: String(err) };
}

export class UpstreamSubscriptions {
  private readonly clients = new Map<string, Client>();
  private open = 0;
  private closed = false;

  constructor(private readonly options: UpstreamOptions) {}

  /** Upstream subscriptions started and not yet ended: the figure a leak would grow. */
  get active(): number {
    return this.open;
  }

  /** Returns the function that ends the subscription (idempotent). */
  subscribe(subgraph: { name: string; url: string }, request: UpstreamRequest, sink: UpstreamSink): () => void {
    const { logger } = this.options;
    if (this.closed) {
      queueMicrotask(() => sink.error({ kind: 'unavailable', reason: 'the gateway is shutting down' }));
      return () => {};
    }
    let url: string;
    try {
      url = webSocketUrl(subgraph.url);
    } catch {
      queueMicrotask(() => sink.error({ kind: 'unavailable', reason: `no usable URL for the subgraph ("${subgraph.url}")` }));
      return () => {};
    }
    let ended = false;
    const end = (how: string) => {
      if (ended) return false;
      ended = true;
      this.open -= 1;
      logger.info({ subgraph: subgraph.name, operationName: request.operationName, how, open: this.open }, 'upstream subscription ended');
      return true;
    };
    this.open += 1;
    logger.info({ subgraph: subgraph.name, operationName: request.operationName, open: this.open }, 'upstream subscription started');
    const endSpan = upstreamSubscribeSpan(subgraph.name, url);
    const dispose = this.client(subgraph.name, url).subscribe(
      { query: request.query, operationName: request.operationName ?? null, variables: request.variables, extensions: request.extensions },
      {
        next: (result) => {
          endSpan();
          if (!ended) sink.next(result as FormattedExecutionResult);
        },
        error: (err) => {
          const failure = describeUpstreamFailure(err);
          const how = failure.kind === 'errors' ? 'errors' : failure.reason;
          endSpan(how);
          if (end(how)) sink.error(failure);
        },
        complete: () => {
          endSpan();
          if (end('completed by the subgraph')) sink.complete();
        },
      },
    );
    return () => {
      endSpan();
      if (end('unsubscribed')) dispose();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(clients.map((c) => c.dispose()));
  }

  private client(name: string, url: string): Client {
    let client = this.clients.get(url);
    if (client) return client;
    const { keepAliveMs, timeoutMs, logger } = this.options;
    let socket: WebSocket | undefined;
    let pongTimer: NodeJS.Timeout | undefined;
    client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: true,
      // Keeps the connection a moment after its last subscription, for the next one.
      lazyCloseTimeout: 5_000,
      retryAttempts: 0,
      shouldRetry: () => false,
      connectionAckWaitTimeout: timeoutMs,
      keepAlive: keepAliveMs,
      on: {
        connected: (s) => {
          socket = s as WebSocket;
          logger.info({ subgraph: name, url }, 'upstream WebSocket connected');
        },
        // graphql-ws sends pings but does not act on a missing pong: a frozen subgraph would keep
        // its subscribers waiting forever.
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => {
            logger.warn({ subgraph: name, url, timeoutMs }, 'upstream WebSocket did not answer a ping; dropping it');
            socket?.terminate();
          }, timeoutMs);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        closed: (event) => {
          clearTimeout(pongTimer);
          socket = undefined;
          const { code, reason } = event as { code?: number; reason?: string };
          logger.info({ subgraph: name, url, code, reason }, 'upstream WebSocket closed');
        },
      },
    });
    this.clients.set(url, client);
    return client;
  }
}
