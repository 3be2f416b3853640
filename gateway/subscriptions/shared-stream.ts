// One upstream subscription fanned out to every client that subscribed with the same operation,
// variables and (result-affecting) headers. Each event is executed once, in arrival order, and
// the same result goes to every client: N identical subscribers cost one upstream subscription
// and one plan execution per event, not N.
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import type { Logger } from '../../runtime/logger.ts';
import type { EventQueue } from '../../runtime/event-queue.ts';
import { subgraphUnavailable } from '../errors.ts';
import type { ErrorFormatter } from './event-execution.ts';
import type { UpstreamFailure, UpstreamRequest, UpstreamSubscriptions } from './upstream.ts';

type Upstream = { kind: 'event'; result: FormattedExecutionResult } | { kind: 'failed'; failure: UpstreamFailure } | { kind: 'completed' };

/** Upstream events waiting for execution; more means executing fell behind the subgraph. */
const PENDING_LIMIT = 1000;

export interface SharedStreamOptions {
  subgraph: { name: string; url: string };
  request: UpstreamRequest;
  execute: (event: FormattedExecutionResult) => Promise<FormattedExecutionResult>;
  upstream: UpstreamSubscriptions;
  format: ErrorFormatter;
  /** Called once when the stream ends, so nobody joins it any more. */
  onFinished: () => void;
  logger: Logger;
}

export class SharedStream {
  private readonly listeners = new Set<EventQueue<FormattedExecutionResult>>();
  private readonly pending: Upstream[] = [];
  private draining = false;
  private finished = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: SharedStreamOptions) {}

  get size(): number {
    return this.listeners.size;
  }

  /** Adds a client; the first one starts the upstream subscription. False once the stream ended. */
  join(listener: EventQueue<FormattedExecutionResult>): boolean {
    if (this.finished) return false;
    this.listeners.add(listener);
    if (!this.unsubscribe) {
      this.unsubscribe = this.options.upstream.subscribe(this.options.subgraph, this.options.request, {
        next: (result) => this.enqueue({ kind: 'event', result }),
        error: (failure) => this.enqueue({ kind: 'failed', failure }),
        complete: () => this.enqueue({ kind: 'completed' }),
      });
    }
    return true;
  }

  /** Removes a client; the last one ends the upstream subscription. */
  leave(listener: EventQueue<FormattedExecutionResult>): void {
    if (!this.listeners.delete(listener) || this.listeners.size > 0 || this.finished) return;
    this.finish();
  }

  /** Ends every client's stream with this last result (e.g. the gateway is shutting down). */
  end(last: FormattedExecutionResult): void {
    if (this.finished) return;
    this.broadcast(last);
    this.finish();
  }

  private enqueue(item: Upstream): void {
    if (this.finished) return;
    if (this.pending.length >= PENDING_LIMIT) {
      this.options.logger.warn(
        { subgraph: this.options.subgraph.name, operationName: this.options.request.operationName, pending: this.pending.length },
        'subscription events arrive faster than they are resolved; ending it',
      );
      this.pending.length = 0;
      this.end({
        errors: [{ message: "The gateway fell behind this subscription's events; subscribe again", extensions: { code: 'SUBSCRIPTION_OVERLOADED' } }],
      });
      return;
    }
    this.pending.push(item);
    if (!this.draining) void this.drain();
  }

  /** One event at a time, so clients see events in the order the subgraph sent them. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let item = this.pending.shift(); item && !this.finished; item = this.pending.shift()) {
        if (item.kind === 'event') {
          let result: FormattedExecutionResult;
          try {
            result = await this.options.execute(item.result);
          } catch (err) {
            // executeQueryPlan records fetch failures in the result; a throw is a bug.
            result = { errors: [this.options.format({ message: String(err) }, err)] };
          }
          if (!this.finished) this.broadcast(result);
        } else {
          if (item.kind === 'failed') this.broadcast({ errors: this.failureErrors(item.failure) });
          this.finish();
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private failureErrors(failure: UpstreamFailure): GraphQLFormattedError[] {
    const name = this.options.subgraph.name;
    if (failure.kind === 'unavailable') {
      const error = subgraphUnavailable(name, failure.reason);
      return [this.options.format(error.toJSON(), error)];
    }
    // The subgraph's own errors (already masked and coded there), named after it like any
    // subgraph error the gateway passes on.
    return failure.errors.map((e) => this.options.format({ ...e, extensions: { ...e.extensions, serviceName: name } }, undefined));
  }

  private broadcast(result: FormattedExecutionResult): void {
    // A push can close a listener (overflow), which calls leave() while we iterate.
    for (const listener of [...this.listeners]) listener.push(result);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.pending.length = 0;
    this.unsubscribe?.();
    this.options.onFinished();
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) listener.end();
  }
}
