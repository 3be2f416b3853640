import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';
import type { TraceCarrier } from './tracing.ts';

/** A fact that happened in a domain, published only after the transaction that made it committed. */
export interface DomainEvent<P = Record<string, unknown>> {
  /** Unique: a consumer that sees an id twice (a re-published event) drops the second. */
  id: string;
  /**
   * Position in its tenant's event log of the subgraph that wrote it (runtime/outbox.ts): 1, 2, 3…
   * in commit order, without gaps. 0 for an event published without an outbox (no order promise).
   */
  sequence: number;
  /** e.g. "AgentStatusChanged", "TaskStateChanged". */
  type: string;
  tenantId: string;
  /** Id of the entity the event is about. */
  subjectId: string;
  occurredAt: string;
  payload: P;
  /**
   * W3C trace context of the write that emitted it (only when tracing is on), so that its
   * delivery continues the mutation's trace (runtime/tracing.ts).
   */
  trace?: TraceCarrier;
}

/** What a write emits: id and sequence are given when it commits. */
export type NewDomainEvent<P = Record<string, unknown>> = Omit<DomainEvent<P>, 'id' | 'sequence'>;

export type EventHandler = (event: DomainEvent) => void;

export interface EventBus {
  readonly kind: 'in-process' | 'redis';
  /** Publishes on `channel` (default: the event's type). */
  publish(event: DomainEvent, channel?: string): Promise<void>;
  /**
   * Resolves once the bus delivers the channel to handler (Redis: SUBSCRIBE confirmed); rejects
   * when subscribing failed, and then nothing was registered. Returns the function that unsubscribes.
   */
  subscribe(channel: string, handler: EventHandler): Promise<() => Promise<void>>;
  /**
   * Calls listener each time the bus has come back after losing its connection and delivers
   * every channel again: whatever was published meanwhile was not delivered. Returns the
   * function that removes the listener.
   */
  onReconnect(listener: () => void): () => void;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function createEventBus(opts: {
  redisUrl?: string | undefined;
  channelPrefix: string;
  logger: Logger;
  redisTimeouts?: Partial<RedisTimeouts>;
}): EventBus {
  const timeouts: RedisTimeouts = { connectTimeoutMs: 2000, commandTimeoutMs: 1000, ...opts.redisTimeouts };
  return opts.redisUrl ? new RedisEventBus(opts.redisUrl, opts.channelPrefix, opts.logger, timeouts) : new InProcessEventBus(opts.logger);
}

class InProcessEventBus implements EventBus {
  readonly kind = 'in-process' as const;
  private readonly emitter = new EventEmitter();

  constructor(private readonly logger: Logger) {
    this.emitter.setMaxListeners(0);
  }

  async publish(event: DomainEvent, channel = event.type): Promise<void> {
    // Delivered on a later tick, as Redis would: a slow or throwing handler never delays or
    // fails the mutation that published.
    setImmediate(() => this.emitter.emit(channel, event));
  }

  async subscribe(type: string, handler: EventHandler): Promise<() => Promise<void>> {
    const safe: EventHandler = (e) => {
      try {
        handler(e);
      } catch (err) {
        this.logger.error({ err, eventType: type }, 'event handler failed');
      }
    };
    this.emitter.on(type, safe);
    return async () => {
      this.emitter.off(type, safe);
    };
  }

  /** In one process nothing is ever lost in transit. */
  onReconnect(): () => void {
    return () => {};
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

export interface RedisTimeouts {
  /** Longest wait for a (re)connection. */
  connectTimeoutMs: number;
  /** Longest wait for one command's answer (PUBLISH, SUBSCRIBE, PING). */
  commandTimeoutMs: number;
}

class RedisEventBus implements EventBus {
  readonly kind = 'redis' as const;
  private readonly pub: Redis;
  private readonly sub: Redis;
  /** Channels whose SUBSCRIBE Redis confirmed, with their handlers: only these receive messages. */
  private readonly handlers = new Map<string, Set<EventHandler>>();
  /** SUBSCRIBEs in flight: every subscriber of that channel meanwhile waits for the same one. */
  private readonly pending = new Map<string, Promise<void>>();
  private readonly reconnectListeners = new Set<() => void>();
  private connectedBefore = false;
  private closing = false;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly logger: Logger,
    timeouts: RedisTimeouts,
  ) {
    const bounded = { connectTimeout: timeouts.connectTimeoutMs, commandTimeout: timeouts.commandTimeoutMs, lazyConnect: false };
    // A subscribed ioredis connection can only (un)subscribe, so publishing needs its own. A
    // publish fails after commandTimeout (or one retry across a reconnect) instead of waiting
    // for Redis: its event stays in the outbox, whose relay publishes it again later.
    this.pub = new Redis(url, { ...bounded, maxRetriesPerRequest: 1 });
    // ioredis re-subscribes by itself after a reconnect (autoResubscribe) but without telling
    // when that is confirmed; we do it ourselves so that the reconnect listeners (which catch up
    // on what was published while the connection was down) run only once messages flow again.
    this.sub = new Redis(url, { ...bounded, maxRetriesPerRequest: null, autoResubscribe: false });
    for (const c of [this.pub, this.sub]) c.on('error', (err) => logger.warn({ err }, 'redis connection error'));
    this.sub.on('message', (channel: string, message: string) => this.dispatch(channel, message));
    this.sub.on('ready', () => {
      if (this.connectedBefore) void this.resubscribe();
      this.connectedBefore = true;
    });
  }

  private channel(name: string): string {
    return `${this.prefix}:events:${name}`;
  }

  private dispatch(channel: string, message: string): void {
    const name = channel.slice(this.prefix.length + ':events:'.length);
    const set = this.handlers.get(name);
    if (!set) return;
    let event: DomainEvent;
    try {
      event = JSON.parse(message) as DomainEvent;
    } catch (err) {
      this.logger.error({ err, channel }, 'dropping malformed event');
      return;
    }
    for (const h of set) {
      try {
        h(event);
      } catch (err) {
        this.logger.error({ err, channel: name }, 'event handler failed');
      }
    }
  }

  private async resubscribe(): Promise<void> {
    const channels = [...this.handlers.keys()].map((name) => this.channel(name));
    try {
      if (channels.length > 0) await this.sub.subscribe(...channels);
    } catch (err) {
      if (this.closing) return;
      // Still deaf: drop the connection so that the next 'ready' tries again.
      this.logger.warn({ err, channels: channels.length }, 'redis re-subscribe failed; reconnecting');
      this.sub.disconnect(true);
      return;
    }
    this.logger.info({ channels: channels.length }, 'redis subscriptions restored');
    for (const listener of this.reconnectListeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err }, 'reconnect listener failed');
      }
    }
  }

  async publish(event: DomainEvent, channel = event.type): Promise<void> {
    await this.pub.publish(this.channel(channel), JSON.stringify(event));
  }

  async subscribe(name: string, handler: EventHandler): Promise<() => Promise<void>> {
    // The handler joins only a confirmed channel. A SUBSCRIBE that fails rejects for everyone
    // who waited on it and leaves nothing behind: the next subscriber sends a new one.
    for (;;) {
      const set = this.handlers.get(name);
      if (set) {
        set.add(handler);
        break;
      }
      let pending = this.pending.get(name);
      if (!pending) {
        pending = this.sub
          .subscribe(this.channel(name))
          .then(() => {
            if (!this.handlers.has(name)) this.handlers.set(name, new Set());
          })
          .finally(() => this.pending.delete(name));
        this.pending.set(name, pending);
      }
      await pending;
    }
    return async () => {
      const s = this.handlers.get(name);
      if (!s?.delete(handler) || s.size > 0) return;
      this.handlers.delete(name);
      try {
        await this.sub.unsubscribe(this.channel(name));
      } catch (err) {
        // Harmless: messages of a channel without handlers are dropped.
        this.logger.warn({ err, channel: name }, 'redis unsubscribe failed');
      }
    };
  }

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => {
      this.reconnectListeners.delete(listener);
    };
  }

  async ping(): Promise<void> {
    await this.pub.ping();
  }

  async close(): Promise<void> {
    this.closing = true;
    this.handlers.clear();
    this.reconnectListeners.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
