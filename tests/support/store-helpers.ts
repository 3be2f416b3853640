// Small helpers the store tests share.
import { GraphQLError } from 'graphql';
import { expect } from 'vitest';
import { createEventBus, type DomainEvent, type EventBus } from '../../runtime/events.ts';
import { silentLogger } from './databases.ts';

/** A clock that moves only when told to, so timestamps are exact and no test sleeps. */
export function manualClock(start = Date.parse('2026-03-01T12:00:00.000Z')) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** The GraphQLError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function rejection(p: Promise<unknown>): Promise<GraphQLError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphQLError);
  return err as GraphQLError;
}

/** An in-process bus that records what it was asked to publish, and fails while `failing` is set. */
export function recordingBus(): EventBus & { published: DomainEvent[]; failing: boolean } {
  const inner = createEventBus({ channelPrefix: 'test', logger: silentLogger });
  const bus = {
    kind: 'in-process' as const,
    published: [] as DomainEvent[],
    failing: false,
    async publish(event: DomainEvent, channel?: string) {
      if (bus.failing) throw new Error('bus down');
      bus.published.push(event);
      await inner.publish(event, channel);
    },
    subscribe: inner.subscribe.bind(inner),
    onReconnect: inner.onReconnect.bind(inner),
    ping: inner.ping.bind(inner),
    close: inner.close.bind(inner),
  };
  return bus;
}
