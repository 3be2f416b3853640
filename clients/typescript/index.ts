// The platform's TypeScript client: one object for the three ways in.
// - GraphQL: `request(SubmitTaskDocument, variables)`, typed end to end. Every named operation of
//   the REST facade (gateway/rest/operations) and of ./operations is a TypedDocumentNode generated
//   by `npm run codegen` (@graphql-codegen's client preset) from schema/api.graphql.
// - REST: `rest.POST('/v1/tasks', { body })`, typed by openapi-fetch over the OpenAPI document's
//   generated `paths` (gateway/rest/generated/openapi-types.ts).
// - Subscriptions: `subscribe(TaskUpdatesDocument, variables, sink)` over graphql-ws.
// Credentials: a bearer token (a person, a service) or an API key (a partner, an agent's own).
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type GraphQLFormattedError, getOperationAST, print } from 'graphql';
import { type Client as WsClient, createClient as createWsClient } from 'graphql-ws';
import createFetchClient, { type Client as RestClient } from 'openapi-fetch';
import type { paths } from '../../gateway/rest/generated/openapi-types.ts';

export * from './generated/graphql.ts';
export { graphql } from './generated/gql.ts';
export type { paths } from '../../gateway/rest/generated/openapi-types.ts';

export interface PlatformClientOptions {
  /** The gateway's base URL, e.g. http://localhost:4000 (GraphQL at /graphql, REST at /v1). */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Sent as `X-API-Key` (an agent's credential, a partner key). */
  apiKey?: string | undefined;
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string> | undefined;
  /** A WebSocket implementation for subscriptions where the runtime has none (Node 20: the `ws` package). */
  webSocketImpl?: unknown;
  fetch?: typeof fetch | undefined;
}

/** Options of one GraphQL request. */
export interface RequestOptions {
  /** Makes a create mutation safe to retry: the same key answers the first result (README, Idempotent mutations). */
  idempotencyKey?: string | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/** A GraphQL answer with errors (or an HTTP failure): the errors as the gateway sent them. */
export class PlatformRequestError extends Error {
  readonly status: number;
  readonly errors: readonly GraphQLFormattedError[];
  /** extensions.code of the first error (BAD_USER_INPUT, NOT_FOUND, UNAUTHENTICATED...). */
  readonly code: string | undefined;
  /** Whatever data came with the errors (a partial result). */
  readonly data: unknown;

  constructor(status: number, errors: readonly GraphQLFormattedError[], data: unknown) {
    const first = errors[0];
    super(first ? first.message : `HTTP ${status}`);
    this.name = 'PlatformRequestError';
    this.status = status;
    this.errors = errors;
    this.code = typeof first?.extensions?.code === 'string' ? first.extensions.code : undefined;
    this.data = data;
  }
}

export interface SubscriptionSink<R> {
  next(value: R): void;
  error?(error: PlatformRequestError | Error): void;
  complete?(): void;
}

export interface PlatformClient {
  /** Runs a query or mutation; resolves its data, rejects with PlatformRequestError on any error. */
  request<R, V extends Record<string, unknown>>(document: TypedDocumentNode<R, V>, variables: V, options?: RequestOptions): Promise<R>;
  /** The REST facade, typed by its OpenAPI document. */
  readonly rest: RestClient<paths>;
  /** Starts a subscription; returns what ends it. */
  subscribe<R, V extends Record<string, unknown>>(document: TypedDocumentNode<R, V>, variables: V, sink: SubscriptionSink<R>): () => void;
  /** Closes the subscriptions' WebSocket, if one was opened. */
  dispose(): Promise<void>;
}

const printed = new WeakMap<object, { query: string; operationName: string | undefined }>();

/** A document printed once, however many times it is sent. */
function source(document: TypedDocumentNode<unknown, never>): { query: string; operationName: string | undefined } {
  let entry = printed.get(document);
  if (!entry) {
    entry = { query: print(document), operationName: getOperationAST(document)?.name?.value };
    printed.set(document, entry);
  }
  return entry;
}

export function createPlatformClient(options: PlatformClientOptions): PlatformClient {
  const base = options.url.replace(/\/+$/, '').replace(/\/graphql$/, '');
  const credentials: Record<string, string> = {};
  if (options.token) credentials.authorization = `Bearer ${options.token}`;
  if (options.apiKey) credentials['x-api-key'] = options.apiKey;
  const doFetch = options.fetch ?? fetch;
  let ws: WsClient | undefined;

  function socket(): WsClient {
    ws ??= createWsClient({
      url: `${base.replace(/^http/, 'ws')}/graphql`,
      lazy: true,
      retryAttempts: 5,
      // The gateway reads credentials from the connection's init payload.
      connectionParams: () => ({ ...credentials }),
      ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
    });
    return ws;
  }

  return {
    async request(document, variables, requestOptions = {}) {
      const { query, operationName } = source(document as TypedDocumentNode<unknown, never>);
      const response = await doFetch(`${base}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...options.headers,
          ...credentials,
          ...(requestOptions.idempotencyKey ? { 'idempotency-key': requestOptions.idempotencyKey } : {}),
          ...requestOptions.headers,
        },
        body: JSON.stringify({ query, operationName, variables }),
        ...(requestOptions.signal ? { signal: requestOptions.signal } : {}),
      });
      const text = await response.text();
      let body: { data?: unknown; errors?: GraphQLFormattedError[] };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        throw new PlatformRequestError(response.status, [{ message: `HTTP ${response.status}: not a GraphQL answer (${text.slice(0, 200)})` }], undefined);
      }
      if (body.errors?.length || !response.ok || body.data === undefined || body.data === null) {
        throw new PlatformRequestError(response.status, body.errors ?? [], body.data);
      }
      return body.data as never;
    },

    rest: createFetchClient<paths>({ baseUrl: base, headers: { ...options.headers, ...credentials }, fetch: (request) => doFetch(request) }),

    subscribe(document, variables, sink) {
      const { query, operationName } = source(document as TypedDocumentNode<unknown, never>);
      return socket().subscribe<never>(
        { query, ...(operationName ? { operationName } : {}), variables },
        {
          next: (result) => {
            const { data, errors } = result as { data?: unknown; errors?: GraphQLFormattedError[] };
            if (errors?.length) sink.error?.(new PlatformRequestError(200, errors, data));
            else sink.next(data as never);
          },
          error: (err) => {
            const errors = Array.isArray(err) ? (err as GraphQLFormattedError[]) : undefined;
            sink.error?.(errors ? new PlatformRequestError(400, errors, undefined) : err instanceof Error ? err : new Error('subscription connection closed'));
          },
          complete: () => sink.complete?.(),
        },
      );
    },

    async dispose() {
      await ws?.dispose();
      ws = undefined;
    },
  };
}
