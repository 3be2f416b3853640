// Domain events as subscription streams, in a subgraph: one feed per tenant from the bus, each
// event delivered once and in sequence order, gaps filled and resumes served from the outbox
// (runtime/outbox.ts), and the way subscribe resolvers find their subgraph's streams.
import { GraphQLError } from 'graphql';
import type { DomainEvent, EventBus } from './events.ts';
import type { Logger } from './logger.ts';
import type { EventLog } from './outbox.ts';
import { EventQueue, filterAsync } from './event-queue.ts';

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
  /** Told of each event handed to a stream's queue, or dropped because the queue was full or closed (metrics). */
  onEvent?: (outcome: 'delivered' | 'dropped') => void;
}

/** Opens event streams on one subgraph's bus and event log; counts the open ones (tests, logs). */
export class EventStreams {
  private open = 0;
  private readonly queues = new Set<EventQueue<DomainEvent>>();
  private readonly onEvent: EventStreamsOptions['onEvent'];
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
    this.onEvent = options.onEvent;
    this.recent = new RecentIds(options.recentIds ?? 10_000);
    // What was published while the connection was down never arrives: read it from the log.
    this.bus.onReconnect(() => {
      for (const feed of this.feeds.values()) feed.catchUp();
    });
  }

  get active(): number {
    return this.open;
  }

  /** Events waiting in all open streams' queues for their consumers. */
  get queued(): number {
    let total = 0;
    for (const queue of this.queues) total += queue.size;
    return total;
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
        this.queues.delete(queue);
        await cleanup();
      },
    });
    try {
      this.queues.add(queue);
      release = await this.acquireBus();
      const feed = this.feedFor(options.tenantId);
      const listener: FeedListener = {
        push: (event) => {
          if (!types.has(event.type)) return;
          const queued = queue.push(event);
          this.onEvent?.(queued ? 'delivered' : 'dropped');
        },
        fail: (err) => queue.fail(err),
      };
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
