// Domain events from a real bus (in-process, and Redis when REDIS_URL is set) as the stream a
// subscription resolver returns: types, tenant and filter respected; returning it releases the
// bus subscriptions; each event executes with a context of its own.
import { randomBytes } from 'node:crypto';
import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createEventBus, type DomainEvent, type EventBus, type EventHandler } from '../../runtime/events.ts';
import { EventStreams, subscribeWithFreshContext } from '../../runtime/subscriptions.ts';
import { REDIS_URL, silentLogger } from '../support/databases.ts';
import { waitFor } from './support.ts';

const buses = [
  { kind: 'in-process', url: undefined, skip: false as const },
  { kind: 'redis', url: REDIS_URL, skip: REDIS_URL ? (false as const) : 'REDIS_URL is not set' },
];

/** The real bus, counting the subscriptions it holds. */
function counted(bus: EventBus): EventBus & { held(): number } {
  let held = 0;
  return {
    kind: bus.kind,
    publish: (e) => bus.publish(e),
    ping: () => bus.ping(),
    close: () => bus.close(),
    async subscribe(type: string, handler: EventHandler) {
      const unsubscribe = await bus.subscribe(type, handler);
      held += 1;
      return async () => {
        held -= 1;
        await unsubscribe();
      };
    },
    held: () => held,
  };
}

const event = (type: string, tenantId: string, subjectId: string): DomainEvent => ({ type, tenantId, subjectId, occurredAt: new Date().toISOString(), payload: {} });

describe.each(buses)('event streams on the $kind bus', ({ url, skip }) => {
  it.skipIf(skip)(`delivers its types of its tenant that pass the filter, and releases the bus when returned${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const bus = counted(createEventBus({ redisUrl: url, channelPrefix: `test-${randomBytes(4).toString('hex')}`, logger: silentLogger }));
    const streams = new EventStreams(bus, 100);
    try {
      const stream = await streams.stream({ types: ['A', 'B'], tenantId: 't1', filter: (e) => e.subjectId !== 'skip-me' });
      expect([streams.active, bus.held()]).toEqual([1, 2]);
      await bus.publish(event('A', 't2', 'other tenant'));
      await bus.publish(event('C', 't1', 'other type'));
      await bus.publish(event('A', 't1', 'skip-me'));
      await bus.publish(event('B', 't1', 'first'));
      await bus.publish(event('A', 't1', 'second'));
      expect((await stream.next()).value?.subjectId).toBe('first');
      expect((await stream.next()).value?.subjectId).toBe('second');

      await stream.return(undefined);
      expect([streams.active, bus.held()]).toEqual([0, 0]);
    } finally {
      await bus.close();
    }
  });

  it.skipIf(skip)(`ends a stream whose consumer fell behind with an error, releasing the bus${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const bus = counted(createEventBus({ redisUrl: url, channelPrefix: `test-${randomBytes(4).toString('hex')}`, logger: silentLogger }));
    const streams = new EventStreams(bus, 3);
    try {
      const stream = await streams.stream({ types: ['A'], tenantId: 't1' });
      for (let i = 0; i < 5; i++) await bus.publish(event('A', 't1', String(i)));
      await waitFor('the overflow', () => streams.active === 0);
      expect(bus.held()).toBe(0);
      await expect(stream.next()).rejects.toMatchObject({ message: expect.stringMatching(/More than 3 events/), extensions: { code: 'SUBSCRIPTION_OVERLOADED' } });
    } finally {
      await bus.close();
    }
  });
});

describe('subscribeWithFreshContext', () => {
  it('executes every event with a new context, and returning it reaches the source', async () => {
    const schema = buildSchema(`type Query { ok: Boolean } type Subscription { tick: Tick! } type Tick { n: Int! context: Int! }`);
    let contexts = 0;
    let sourceReturned = false;
    const source = (async function* () {
      try {
        for (let n = 1; ; n++) yield { n };
      } finally {
        sourceReturned = true;
      }
    })();
    const fields = schema.getSubscriptionType()?.getFields();
    const tick = fields?.tick;
    if (!tick) throw new Error('no tick field');
    tick.subscribe = () => source;
    tick.resolve = (payload: { n: number }, _args: unknown, context: { id: number }) => ({ n: payload.n, context: context.id });
    const stream = await subscribeWithFreshContext({ schema, document: parse('subscription { tick { n context } }'), contextValue: { id: 0 } }, () => ({ id: ++contexts }));
    if (!(Symbol.asyncIterator in stream)) throw new Error(`expected a stream, got ${JSON.stringify(stream)}`);
    expect((await stream.next()).value).toEqual({ data: { tick: { n: 1, context: 1 } } });
    expect((await stream.next()).value).toEqual({ data: { tick: { n: 2, context: 2 } } });
    await stream.return(undefined);
    expect(sourceReturned).toBe(true);
  });
});
