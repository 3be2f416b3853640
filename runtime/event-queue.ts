// The one place where events wait for a slow consumer: a bounded async queue that ends its
// consumer with a coded error when it falls behind, and an async filter over such a queue. Used by
// the subgraphs' event streams and the gateway's shared subscription streams alike.
import { GraphQLError } from 'graphql';

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
