// Subscription support shared by the subgraphs and the gateway: a bounded async queue (the one
// place where events wait for a slow consumer), domain events from the bus as such a queue,
// per-event execution with a fresh context, the checks an operation passes before anything runs,
// and the subgraphs' graphql-ws endpoint. The gateway's side is gateway/subscriptions/.
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  validate,
  type ASTVisitor,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ParseOptions,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { baseContext, type RequestContext } from './context.ts';
import { IDENTITY_HEADER, type RequestIdentity } from './identity.ts';
import type { DomainEvent, EventBus } from './events.ts';
import type { Logger } from './logger.ts';
import type { EventLog } from './outbox.ts';

/**
 * The consumer fell behind: more than `limit` items were waiting for it. A coded GraphQL error, so
 * a subscription ended by it tells its subscriber why instead of an internal error.
 */
export class QueueOverflowError extends GraphQLError {
  constructor(readonly limit: number) {
    super(`More than ${limit} events were waiting for a subscriber that fell behind; subscribe again`, { extensions: { code: 'SUBSCRIPTION_OVERLOADED' } });
    this.name = 'QueueOverflowError';
  }
}

export interface EventQueueOptions {
  /** Items that may wait for the consumer; one more ends the queue with QueueOverflowError. */
  limit: number;
  /** Called once when the queue overflows. */
  onOverflow?: () => void;
  /**
   * What the consumer sees after an overflow: QueueOverflowError ('fail', the default), or the
   * plain end ('end') when onOverflow already dealt with the consumer (closed its connection).
   */
  overflow?: 'fail' | 'end';
  /** Called once when the queue ends for any reason: consumer return(), end(), fail(), overflow. */
  onClose?: () => void | Promise<void>;
}

/**
 * An async iterator fed by push(). Unlike an async generator, return() takes effect at once even
 * while the consumer is waiting in next(): a client that unsubscribes releases what feeds it
 * immediately, not at the next event (which may never come).
 */
export class EventQueue<T> implements AsyncGenerator<T, undefined, unknown> {
  private readonly items: T[] = [];
  private waiting: ((result: IteratorResult<T, undefined>) => void) | undefined;
  private rejectWaiting: ((err: unknown) => void) | undefined;
  private ended = false;
  private error: unknown;
  private closed = false;

  constructor(private readonly options: EventQueueOptions) {}

  get size(): number {
    return this.items.length;
  }

  /** True once nothing more will be delivered (the items already queued may still be read). */
  get done(): boolean {
    return this.ended;
  }

  /** Queues an item; false when the queue has ended or just overflowed. */
  push(item: T): boolean {
    if (this.ended) return false;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.rejectWaiting = undefined;
      resolve({ value: item, done: false });
      return true;
    }
    if (this.items.length >= this.options.limit) {
      this.items.length = 0;
      this.options.onOverflow?.();
      if (this.options.overflow === 'end') this.end();
      else this.fail(new QueueOverflowError(this.options.limit));
      return false;
    }
    this.items.push(item);
    return true;
  }

  /** The producer is done: the consumer reads what is queued, then sees the end. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.waiting) this.settle();
    void this.close();
  }

  /** The producer failed: the consumer reads what is queued, then gets err. */
  fail(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = err;
    if (this.waiting) this.settle();
    void this.close();
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.ended) {
      const err = this.error;
      this.error = undefined;
      return err === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.rejectWaiting = reject;
    });
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.items.length = 0;
    this.ended = true;
    this.error = undefined;
    if (this.waiting) this.settle();
    await this.close();
    return { value: undefined, done: true };
  }

  async throw(err?: unknown): Promise<IteratorResult<T, undefined>> {
    await this.return();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private settle(): void {
    const resolve = this.waiting;
    const reject = this.rejectWaiting;
    this.waiting = this.rejectWaiting = undefined;
    const err = this.error;
    this.error = undefined;
    if (err === undefined) resolve?.({ value: undefined, done: true });
    else reject?.(err);
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.onClose?.();
  }
}

/** Keeps the items of source for which keep() holds; return() reaches the source at once. */
export function filterAsync<T>(
  source: AsyncGenerator<T, undefined, unknown>,
  keep: (item: T) => boolean | Promise<boolean>,
): AsyncGenerator<T, undefined, unknown> {
  const filtered: AsyncGenerator<T, undefined, unknown> = {
    async next() {
      for (;;) {
        const result = await source.next();
        if (result.done) return result;
        if (await keep(result.value)) return result;
      }
    },
    return: () => source.return(undefined),
    throw: (err) => source.throw(err),
    [Symbol.asyncIterator]() {
      return filtered;
    },
  };
  return filtered;
}

// ---------------------------------------------------------------------------------------------
// Domain events as a stream

export interface EventStreamOptions {
  /** Event types to receive. */
  types: readonly string[];
  /** Events of other tenants never reach the stream. */
  tenantId: string;
  /** Further filtering, in event order; may read the database. */
  filter?: (event: DomainEvent) => boolean | Promise<boolean>;
  /**
   * Resume: the retained events of these types after this sequence first, then the live ones,
   * with no gap and no duplicate. EventsExpiredError when some of them are no longer retained.
   */
  afterSequence?: number | null | undefined;
}

/** A subscriber asked to resume after a sequence whose successors are not all retained (or that was never reached). */
export class EventsExpiredError extends GraphQLError {
  constructor(afterSequence: number, reason: 'expired' | 'future') {
    const why =
      reason === 'expired' ? `some events after sequence ${afterSequence} are no longer retained` : `sequence ${afterSequence} is past the last event`;
    super(`Cannot resume: ${why}. Query the current state, then subscribe again without afterSequence.`, {
      extensions: { code: 'EVENTS_EXPIRED', afterSequence, reason },
    });
    this.name = 'EventsExpiredError';
  }
}

/** The event log could not be read (or the bus would not subscribe), so the stream cannot promise it misses nothing. */
export class EventsUnavailableError extends GraphQLError {
  constructor(what = 'Events could not be read from the event log') {
    super(`${what}; subscribe again with afterSequence set to the last sequence received`, {
      extensions: { code: 'EVENTS_UNAVAILABLE' },
    });
    this.name = 'EventsUnavailableError';
  }
}

/** The most recent ids offered, at most capacity of them: a re-published event is recognised. */
export class RecentIds {
  // A Set iterates in insertion order: its first entry is the oldest.
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** True the first time an id is offered (while it is among the last capacity). */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
    return true;
  }
}

interface FeedListener {
  push(event: DomainEvent): void;
  fail(err: unknown): void;
}

/** Events read from the log per query (replays and gap fills). */
const LOG_PAGE = 200;

/**
 * One tenant's events for the streams of that tenant in this process: in sequence order, each
 * once, none missing. The bus may deliver late (a relay after a crash), out of order, twice, or
 * not at all (Redis dropped the connection): an event past the next expected sequence makes
 * the feed read what lies between from the log first (it committed before, so it is there), one
 * already delivered is dropped, and after a reconnect the feed reads what it missed.
 */
class TenantFeed {
  readonly listeners = new Set<FeedListener>();
  /** Resolves once the feed knows where the tenant's log stands: events up to there are the past. */
  readonly ready: Promise<void>;
  private last = 0;
  private chain: Promise<void>;

  constructor(
    readonly tenantId: string,
    private readonly log: EventLog,
    private readonly onFailure: (feed: TenantFeed, err: unknown) => void,
  ) {
    this.ready = log.head(tenantId).then((head) => {
      this.last = head;
    });
    this.chain = this.ready;
  }

  receive(event: DomainEvent): void {
    this.enqueue(() => this.inOrder(event));
  }

  /** Reads and delivers whatever committed after the last delivered event. */
  catchUp(): void {
    this.enqueue(() => this.fill(undefined));
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.onFailure(this, err));
  }

  private async inOrder(event: DomainEvent): Promise<void> {
    if (event.sequence <= this.last) return;
    if (event.sequence > this.last + 1) await this.fill(event.sequence);
    this.deliver(event);
  }

  private async fill(before: number | undefined): Promise<void> {
    for (;;) {
      const page = await this.log.read(this.tenantId, { after: this.last, ...(before === undefined ? {} : { before }), limit: LOG_PAGE });
      for (const event of page) this.deliver(event);
      if (page.length < LOG_PAGE) return;
    }
  }

  private deliver(event: DomainEvent): void {
    if (event.sequence <= this.last) return;
    this.last = event.sequence;
    for (const listener of this.listeners) listener.push(event);
  }
}

export interface EventStreamsOptions {
  bus: EventBus;
  /** The subgraph's retained events (its outbox): where streams resume from and fill gaps. */
  log: EventLog;
  /** Events one stream may hold for a consumer (the gateway) that fell behind. */
  queueLimit?: number;
  /** Event ids remembered to drop re-published events. */
  recentIds?: number;
  logger?: Logger;
}

/** Opens event streams on one subgraph's bus and event log; counts the open ones (tests, logs). */
export class EventStreams {
  private open = 0;
  private readonly bus: EventBus;
  private readonly log: EventLog;
  private readonly queueLimit: number;
  private readonly logger: Logger | undefined;
  private readonly recent: RecentIds;
  private readonly feeds = new Map<string, TenantFeed>();
  private busSubscription: Promise<() => Promise<void>> | undefined;
  private busUsers = 0;

  constructor(options: EventStreamsOptions) {
    this.bus = options.bus;
    this.log = options.log;
    this.queueLimit = options.queueLimit ?? 1000;
    this.logger = options.logger;
    this.recent = new RecentIds(options.recentIds ?? 10_000);
    // What was published while the connection was down never arrives: read it from the log.
    this.bus.onReconnect(() => {
      for (const feed of this.feeds.values()) feed.catchUp();
    });
  }

  get active(): number {
    return this.open;
  }

  /**
   * Resolves once the bus delivers the subgraph's events to the stream, so an event committed
   * after that is never missed (with afterSequence: once the events after it are known to be
   * retained). Returning the stream (or its overflow) releases the bus subscription.
   */
  async stream(options: EventStreamOptions): Promise<AsyncGenerator<DomainEvent, undefined, unknown>> {
    const after = options.afterSequence ?? null;
    const types = new Set(options.types);
    let release: (() => Promise<void>) | undefined;
    let joined: { feed: TenantFeed; listener: FeedListener } | undefined;
    const cleanup = async () => {
      if (joined) this.leave(joined.feed, joined.listener);
      joined = undefined;
      const r = release;
      release = undefined;
      await r?.();
    };
    this.open += 1;
    const queue = new EventQueue<DomainEvent>({
      limit: this.queueLimit,
      onClose: async () => {
        this.open -= 1;
        await cleanup();
      },
    });
    try {
      release = await this.acquireBus();
      const feed = this.feedFor(options.tenantId);
      const listener: FeedListener = { push: (event) => void (types.has(event.type) && queue.push(event)), fail: (err) => queue.fail(err) };
      feed.listeners.add(listener);
      joined = { feed, listener };
      await feed.ready;
      if (after !== null) {
        const check = await this.log.checkResume(options.tenantId, after);
        if (check !== 'ok') throw new EventsExpiredError(after, check);
      }
      // The consumer may have gone (an overflow) meanwhile.
      if (queue.done) await cleanup();
    } catch (err) {
      await queue.return();
      throw err;
    }
    const source = after === null ? queue : this.replayThenLive(queue, options.tenantId, [...types], after);
    return options.filter ? filterAsync(source, options.filter) : source;
  }

  /** The retained events after `after`, read page by page as the consumer asks, then the live queue without what the replay gave. */
  private replayThenLive(queue: EventQueue<DomainEvent>, tenantId: string, types: string[], after: number): AsyncGenerator<DomainEvent, undefined, unknown> {
    let position = after;
    let page: DomainEvent[] = [];
    let replayed = false;
    const log = this.log;
    const stream: AsyncGenerator<DomainEvent, undefined, unknown> = {
      async next() {
        for (;;) {
          const event = page.shift();
          if (event) {
            position = event.sequence;
            return { value: event, done: false };
          }
          if (!replayed && !queue.done) {
            try {
              page = await log.read(tenantId, { after: position, types, limit: LOG_PAGE });
            } catch {
              await queue.return();
              throw new EventsUnavailableError();
            }
            replayed = page.length < LOG_PAGE;
            continue;
          }
          // Live events up to where the replay reached were replayed already.
          const result = await queue.next();
          if (result.done || result.value.sequence > position) return result;
        }
      },
      async return() {
        page = [];
        replayed = true;
        return queue.return();
      },
      async throw(err) {
        await stream.return(undefined);
        throw err;
      },
      [Symbol.asyncIterator]() {
        return stream;
      },
    };
    return stream;
  }

  private receive(event: DomainEvent): void {
    if (!this.recent.add(event.id)) return;
    this.feeds.get(event.tenantId)?.receive(event);
  }

  private feedFor(tenantId: string): TenantFeed {
    let feed = this.feeds.get(tenantId);
    if (!feed) {
      feed = new TenantFeed(tenantId, this.log, (failed, err) => this.fail(failed, err));
      this.feeds.set(tenantId, feed);
    }
    return feed;
  }

  private leave(feed: TenantFeed, listener: FeedListener): void {
    feed.listeners.delete(listener);
    if (feed.listeners.size === 0) this.dropFeed(feed);
  }

  private dropFeed(feed: TenantFeed): void {
    if (this.feeds.get(feed.tenantId) === feed) this.feeds.delete(feed.tenantId);
  }

  /** The log could not be read: the feed's streams end (their subscribers resume), the next stream starts afresh. */
  private fail(feed: TenantFeed, err: unknown): void {
    this.logger?.error({ err, streams: feed.listeners.size }, 'event log read failed; ending the streams that depend on it');
    this.dropFeed(feed);
    const error = new EventsUnavailableError();
    for (const listener of [...feed.listeners]) listener.fail(error);
  }

  /** One bus subscription to the subgraph's channel while any stream is open; a failed one is tried again by the next stream. */
  private async acquireBus(): Promise<() => Promise<void>> {
    this.busUsers += 1;
    let subscription = this.busSubscription;
    if (!subscription) {
      const created = this.bus.subscribe(this.log.channel, (event) => this.receive(event));
      subscription = created;
      this.busSubscription = created;
      created.catch(() => {
        if (this.busSubscription === created) this.busSubscription = undefined;
      });
    }
    try {
      await subscription;
    } catch (err) {
      this.busUsers -= 1;
      this.logger?.warn({ err }, 'event bus subscribe failed');
      throw new EventsUnavailableError('The event bus did not confirm the subscription');
    }
    let released = false;
    const held = subscription;
    return async () => {
      if (released) return;
      released = true;
      this.busUsers -= 1;
      if (this.busUsers > 0 || this.busSubscription !== held) return;
      this.busSubscription = undefined;
      const unsubscribe = await held;
      await unsubscribe();
    };
  }
}

// The subscribe resolvers find the event source of their subgraph through their context: the
// graphql-ws transport binds it to every context it creates. A WeakMap keeps the subgraphs'
// context types (and HTTP contexts, which have no event source) as they are.
const sources = new WeakMap<object, EventStreams>();

export function bindEventStreams(context: object, streams: EventStreams): void {
  sources.set(context, streams);
}

/** The event source of the subgraph this context belongs to; throws outside graphql-ws. */
export function eventStreamsOf(context: object): EventStreams {
  const streams = sources.get(context);
  if (!streams) throw new Error('subscriptions are served over graphql-ws only; this context has no event source');
  return streams;
}

// ---------------------------------------------------------------------------------------------
// Per-event execution

/**
 * graphql-js's subscribe(), except that each event executes with a new context from
 * freshContext(). Per-request caches (dataloaders) would otherwise live as long as the
 * subscription and serve the first event's rows to every later one.
 */
export async function subscribeWithFreshContext(
  args: ExecutionArgs,
  freshContext: () => unknown,
): Promise<AsyncGenerator<ExecutionResult, undefined, unknown> | ExecutionResult> {
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream;
  const source = stream[Symbol.asyncIterator]();
  const mapped: AsyncGenerator<ExecutionResult, undefined, unknown> = {
    async next() {
      const result = await source.next();
      if (result.done) return { value: undefined, done: true };
      return { value: await execute({ ...args, rootValue: result.value, contextValue: freshContext() }), done: false };
    },
    async return() {
      await source.return?.(undefined);
      return { value: undefined, done: true };
    },
    async throw(err) {
      await source.return?.(undefined);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
  };
  return mapped;
}

// ---------------------------------------------------------------------------------------------
// Checking an operation before anything runs

/** What a graphql-ws Subscribe message or a GraphQL-over-SSE request carries. */
export interface OperationRequest {
  query?: unknown;
  operationName?: unknown;
  variables?: unknown;
  extensions?: unknown;
}

export interface CheckedOperation {
  query: string;
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName: string | undefined;
  /** As sent (JSON), already checked to coerce against the operation's variable definitions. */
  variables: Record<string, unknown>;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function coded(code: string, errors: readonly GraphQLError[]): GraphQLError[] {
  return errors.map(
    (e) =>
      new GraphQLError(e.message, {
        nodes: e.nodes ?? null,
        source: e.source ?? null,
        positions: e.positions ?? null,
        path: e.path ?? null,
        originalError: e.originalError ?? null,
        extensions: { ...e.extensions, code },
      }),
  );
}

/**
 * The GraphQL spec (and graphql-js 17) forbids @skip/@include on a subscription's root fields:
 * whether the operation subscribes to anything must not depend on variables. graphql-js 16 does
 * not check it; Apollo's query planner then fails on such an operation.
 */
export function NoConditionalSubscriptionRootRule(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node) {
      if (node.operation !== 'subscription') return;
      const seen = new Set<string>();
      const walk = (set: SelectionSetNode) => {
        for (const selection of set.selections) {
          const conditional = selection.directives?.find((d) => d.name.value === 'skip' || d.name.value === 'include');
          if (conditional) {
            const name = node.name ? `Subscription "${node.name.value}"` : 'Anonymous Subscription';
            context.reportError(
              new GraphQLError(`${name} must not use \`@skip\` or \`@include\` directives in the top level selection.`, { nodes: conditional }),
            );
          }
          if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet);
          if (selection.kind === Kind.FRAGMENT_SPREAD && !seen.has(selection.name.value)) {
            seen.add(selection.name.value);
            const fragment = context.getFragment(selection.name.value);
            if (fragment) walk(fragment.selectionSet);
          }
        }
      };
      walk(node.selectionSet);
    },
  };
}

/**
 * Parses, validates (graphql-js's rules plus extraRules) and resolves the operation and checks its
 * variables, with the codes Apollo Server uses over HTTP (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
 * OPERATION_RESOLUTION_FAILURE, BAD_USER_INPUT, BAD_REQUEST). Errors mean nothing may run.
 */
export function checkOperation(
  schema: GraphQLSchema,
  request: OperationRequest,
  extraRules: readonly ValidationRule[] = [],
  parseOptions: ParseOptions = {},
): CheckedOperation | GraphQLError[] {
  const { query, operationName, variables } = request;
  if (typeof query !== 'string' || query.trim() === '') {
    return [new GraphQLError('The request must contain a non-empty "query" string', { extensions: { code: 'BAD_REQUEST' } })];
  }
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    return [new GraphQLError('"operationName" must be a string', { extensions: { code: 'BAD_REQUEST' } })];
  }
  if (variables !== undefined && variables !== null && !isRecord(variables)) {
    return [new GraphQLError('"variables" must be an object', { extensions: { code: 'BAD_REQUEST' } })];
  }
  let document: DocumentNode;
  try {
    document = parse(query, parseOptions);
  } catch (err) {
    if (err instanceof GraphQLError) return coded('GRAPHQL_PARSE_FAILED', [err]);
    throw err;
  }
  // First on its own: graphql-js 16's single-root-field rule throws on a conditional root field
  // (it evaluates @skip/@include without variables) instead of reporting it.
  const conditional = validate(schema, document, [NoConditionalSubscriptionRootRule]);
  if (conditional.length > 0) return coded('GRAPHQL_VALIDATION_FAILED', conditional);
  let invalid: readonly GraphQLError[];
  try {
    invalid = validate(schema, document, [...specifiedRules, ...extraRules]);
  } catch (err) {
    if (!(err instanceof GraphQLError)) throw err;
    invalid = [err];
  }
  if (invalid.length > 0) return coded('GRAPHQL_VALIDATION_FAILED', invalid);
  const name = operationName ?? undefined;
  const operation = getOperationAST(document, name);
  if (!operation) {
    const message = name ? `Unknown operation named "${name}".` : 'Must provide operation name if query contains multiple operations.';
    return [new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })];
  }
  const values = variables ?? {};
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], values);
  if (coerced.errors) return coded('BAD_USER_INPUT', coerced.errors);
  return { query, document, operation, operationName: name, variables: values };
}

/**
 * Apollo Server would run a subscription sent as a plain HTTP request like a query (a subgraph:
 * the event resolver without an event) or fail deep in the gateway ("Execution of subscriptions
 * not supported"): both an internal error for what is a client mistake. This says where to go.
 */
export function subscriptionsOverHttpRejected<C extends BaseContext>(hint: string): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation === 'subscription') {
            throw new GraphQLError(`Subscriptions are not served over plain HTTP requests: ${hint}`, {
              extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The subgraphs' graphql-ws endpoint

export interface SubscriptionEndpointOptions<C extends RequestContext> {
  server: Server;
  schema: GraphQLSchema;
  createContext: (base: RequestContext) => C;
  /** The identity in a gateway identity token (header value); throws a coded GraphQLError (401) when invalid. */
  verifyIdentity: (headerValue: string | undefined) => Promise<RequestIdentity>;
  /** The subgraph's event source; none for a subgraph without an outbox (and so without subscription fields). */
  streams: EventStreams | undefined;
  /** The subgraph's HTTP error formatting (masking), applied to every error sent. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  logger: Logger;
  maxPayloadBytes: number;
}

/**
 * graphql-ws (graphql-transport-ws) on the same port as GraphQL over HTTP, at /graphql, for
 * subscriptions only (queries and mutations have one path: HTTP). Subscribers are gateways; they
 * send the client's request id in the Subscribe message's extensions.headers. Each event runs
 * with a fresh context. Logs "subscription opened"/"closed" with the count of open streams.
 * close() sends 1001 (going away) to every socket.
 */
export function serveSubscriptions<C extends RequestContext>(opts: SubscriptionEndpointOptions<C>): { close(timeoutMs: number): Promise<void> } {
  const { logger, streams, formatError } = opts;
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes });
  const onUpgrade = (req: Parameters<WebSocketServer['handleUpgrade']>[0], socket: Parameters<WebSocketServer['handleUpgrade']>[1], head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/graphql') return void socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  opts.server.on('upgrade', onUpgrade);

  const contextFor = (identity: RequestIdentity, requestId: string): C => {
    const context = opts.createContext(baseContext(identity, requestId, logger));
    if (streams) bindEventStreams(context, streams);
    return context;
  };
  // Per connection, the ids of the subscriptions that opened a stream (not refused ones).
  const streaming = new WeakMap<object, Set<string>>();
  const requestIdOf = (contextValue: unknown) => (contextValue as RequestContext).requestId;
  const ws = useServer(
    {
      onSubscribe: async (_ctx, _id, payload) => {
        let identity: RequestIdentity;
        try {
          identity = await opts.verifyIdentity(forwardedHeader(payload.extensions, IDENTITY_HEADER));
        } catch (err) {
          if (err instanceof GraphQLError) return [err];
          throw err;
        }
        const checked = checkOperation(opts.schema, payload);
        if (Array.isArray(checked)) return checked;
        if (checked.operation.operation !== 'subscription') {
          return [
            new GraphQLError('Only subscriptions are served over WebSocket; send queries and mutations over HTTP', { extensions: { code: 'BAD_REQUEST' } }),
          ];
        }
        const contextValue = contextFor(identity, forwardedRequestId(payload.extensions));
        return { schema: opts.schema, document: checked.document, operationName: checked.operationName, variableValues: checked.variables, contextValue };
      },
      subscribe: (args) => subscribeWithFreshContext(args, () => contextFor((args.contextValue as RequestContext).identity, requestIdOf(args.contextValue))),
      onOperation: (ctx, id, payload, args, result) => {
        const requestId = requestIdOf(args.contextValue);
        if (!(Symbol.asyncIterator in result)) return void logger.info({ id, operationName: payload.operationName, requestId }, 'subscription refused');
        let ids = streaming.get(ctx);
        if (!ids) streaming.set(ctx, (ids = new Set()));
        ids.add(id);
        logger.info({ id, operationName: payload.operationName, requestId, open: streams?.active ?? 0 }, 'subscription opened');
      },
      onComplete: (ctx, id, payload) => {
        if (!streaming.get(ctx)?.delete(id)) return;
        logger.info({ id, operationName: payload.operationName, open: streams?.active ?? 0 }, 'subscription closed');
      },
      onNext: (_ctx, _id, _payload, _args, result) => (result.errors ? { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e)) } : result),
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => formatError(e.toJSON(), e)),
    },
    wss,
  );
  return {
    async close(timeoutMs) {
      opts.server.off('upgrade', onUpgrade);
      // dispose() waits for every socket's closing handshake; a peer that never answers is cut.
      const timer = setTimeout(() => {
        for (const socket of wss.clients) socket.terminate();
      }, timeoutMs);
      timer.unref();
      await ws.dispose();
      clearTimeout(timer);
    },
  };
}

function forwardedHeader(extensions: Record<string, unknown> | undefined | null, name: string): string | undefined {
  const headers = extensions?.headers;
  const value = typeof headers === 'object' && headers !== null ? (headers as Record<string, unknown>)[name] : undefined;
  return typeof value === 'string' ? value : undefined;
}

function forwardedRequestId(extensions: Record<string, unknown> | undefined | null): string {
  const id = forwardedHeader(extensions, 'x-request-id');
  return id !== undefined && /^[\w.:-]{1,128}$/.test(id) ? id : randomUUID();
}
