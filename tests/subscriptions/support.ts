// Helpers for the subscription tests: a real graphql-ws client (graphql-ws + ws) whose results a
// test awaits one by one, and the counters that show whether subscriptions were released.
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import { createClient, type Client, type ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';
import { defaultAuthorization } from '../support/auth.ts';
import type { ServiceProcess } from '../support/processes.ts';

export type Result = FormattedExecutionResult<Record<string, unknown>>;

export type Ending = { kind: 'complete' } | { kind: 'error'; error: unknown };

export interface TestSubscription {
  /** The next result; fails after timeoutMs, naming what did arrive. */
  next(timeoutMs?: number): Promise<Result>;
  /** Resolves when the server completed or errored the subscription. */
  ended: Promise<Ending>;
  /** Results not consumed by next() yet. */
  readonly buffered: readonly Result[];
  unsubscribe(): void;
}

/** A client of the gateway (or a subgraph); connects as the tests' default admin unless connectionParams say otherwise. */
export function wsClient(httpUrl: string, options: Partial<ClientOptions> = {}): Client {
  return createClient({
    url: httpUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: async () => ({ authorization: await defaultAuthorization() }),
    ...options,
  });
}

// graphql-ws's client.iterate() never settles if the server ends the subscription before the
// iterator is first awaited; a sink-based queue has no such window.
export function subscribe(client: Client, payload: { query: string; variables?: Record<string, unknown>; operationName?: string }): TestSubscription {
  const queue: Result[] = [];
  const waiters: ((r: Result) => void)[] = [];
  let settle!: (e: Ending) => void;
  const ended = new Promise<Ending>((resolve) => (settle = resolve));
  const dispose = client.subscribe<Record<string, unknown>>(payload, {
    next: (result) => {
      const waiter = waiters.shift();
      if (waiter) waiter(result as Result);
      else queue.push(result as Result);
    },
    error: (error) => settle({ kind: 'error', error }),
    complete: () => settle({ kind: 'complete' }),
  });
  return {
    ended,
    get buffered() {
      return queue;
    },
    next(timeoutMs = 10_000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise<Result>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no result within ${timeoutMs} ms for ${payload.query.slice(0, 120)}`));
        }, timeoutMs);
        const done = (r: Result) => {
          clearTimeout(timer);
          resolve(r);
        };
        waiters.push(done);
        void ended.then((e) => {
          if (!waiters.includes(done)) return;
          waiters.splice(waiters.indexOf(done), 1);
          clearTimeout(timer);
          reject(new Error(`subscription ended (${e.kind === 'error' ? JSON.stringify(e.error) : 'complete'}) before the next result`));
        });
      });
    },
    unsubscribe: dispose,
  };
}

/** The protocol-level errors a subscription was refused with (graphql-ws Error message). */
export async function refusal(subscription: TestSubscription, timeoutMs = 10_000): Promise<GraphQLFormattedError[]> {
  const ending = await Promise.race([
    subscription.ended,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not refused in time')), timeoutMs)),
  ]);
  if (ending.kind !== 'error' || !Array.isArray(ending.error)) throw new Error(`expected an Error message, got ${JSON.stringify(ending)}`);
  return ending.error as GraphQLFormattedError[];
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface GatewayStats {
  clientSubscriptions: number;
  sharedStreams: number;
  upstreamSubscriptions: number;
  webSocketConnections: number;
  sseConnections: number;
}

export async function gatewayStats(gatewayUrl: string): Promise<GatewayStats> {
  // The counters are for admins only (the default test caller is the default tenant's admin).
  const res = await fetch(gatewayUrl.replace(/\/graphql$/, '/debug/subscriptions'), { headers: { authorization: await defaultAuthorization() } });
  if (res.status !== 200) throw new Error(`stats answered ${res.status}`);
  return (await res.json()) as GatewayStats;
}

/**
 * Subscriptions open in a subgraph (its event streams on the bus), from its own log: each
 * "subscription opened"/"closed" line carries the count after the change.
 */
export function subgraphOpenSubscriptions(service: ServiceProcess): { opened: number; closed: number; open: number } {
  let opened = 0;
  let closed = 0;
  let open = 0;
  for (const line of service.jsonLogs()) {
    if (line.msg === 'subscription opened') opened += 1;
    else if (line.msg === 'subscription closed') closed += 1;
    else continue;
    if (typeof line.open === 'number') open = line.open;
  }
  return { opened, closed, open };
}

/** Waits until the subgraph has opened `count` more subscriptions than `before` (its bus is listening). */
export async function subgraphSubscribed(service: ServiceProcess, before: number, count = 1): Promise<void> {
  await waitFor(`${count} subscription(s) opened in ${service.name}`, () => subgraphOpenSubscriptions(service).opened >= before + count);
}
