import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';

/** A fact that happened in a domain, published only after the transaction that made it committed. */
export interface DomainEvent<P = Record<string, unknown>> {
  /** e.g. "AgentStatusChanged", "TaskStateChanged". */
  type: string;
  tenantId: string;
  /** Id of the entity the event is about. */
  subjectId: string;
  occurredAt: string;
  payload: P;
}

export type EventHandler = (event: DomainEvent) => void;

export interface EventBus {
  readonly kind: 'in-process' | 'redis';
  publish(event: DomainEvent): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribe(type: string, handler: EventHandler): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function createEventBus(opts: { redisUrl?: string | undefined; channelPrefix: string; logger: Logger }): EventBus {
  return opts.redisUrl ? new RedisEventBus(opts.redisUrl, opts.channelPrefix, opts.logger) : new InProcessEventBus(opts.logger);
}

class InProcessEventBus implements EventBus {
  readonly kind = 'in-process' as const;
  private readonly emitter = new EventEmitter();

  constructor(private readonly logger: Logger) {
    this.emitter.setMaxListeners(0);
  }

  async publish(event: DomainEvent): Promise<void> {
    // Delivered on a later tick, as Redis would: a slow or throwing handler never delays or
    // fails the mutation that published.
    setImmediate(() => this.emitter.emit(event.type, event));
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

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

class RedisEventBus implements EventBus {
  readonly kind = 'redis' as const;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly handlers = new Map<string, Set<EventHandler>>();

  constructor(url: string, private readonly prefix: string, private readonly logger: Logger) {
    // A subscribed ioredis connection can only (un)subscribe, so publishing needs its own.
    this.pub = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: false });
    this.sub = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
    for (const c of [this.pub, this.sub]) c.on('error', (err) => logger.warn({ err }, 'redis connection error'));
    this.sub.on('message', (channel: string, message: string) => this.dispatch(channel, message));
  }

  private channel(type: string): string {
    return `${this.prefix}:events:${type}`;
  }

  private dispatch(channel: string, message: string): void {
    const type = channel.slice(this.prefix.length + ':events:'.length);
    const set = this.handlers.get(type);
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
        this.logger.error({ err, eventType: type }, 'event handler failed');
      }
    }
  }

  async publish(event: DomainEvent): Promise<void> {
    await this.pub.publish(this.channel(event.type), JSON.stringify(event));
  }

  async subscribe(type: string, handler: EventHandler): Promise<() => Promise<void>> {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
      await this.sub.subscribe(this.channel(type));
    }
    set.add(handler);
    return async () => {
      const s = this.handlers.get(type);
      if (!s) return;
      s.delete(handler);
      if (s.size === 0) {
        this.handlers.delete(type);
        await this.sub.unsubscribe(this.channel(type));
      }
    };
  }

  async ping(): Promise<void> {
    await this.pub.ping();
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
