import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createEventBus, type DomainEvent } from '../../runtime/events.ts';
import { REDIS_URL, silentLogger } from '../support/databases.ts';

const event = (subjectId: string): DomainEvent => ({
  id: randomBytes(8).toString('hex'),
  sequence: 0,
  type: 'ThingHappened',
  tenantId: 'default',
  subjectId,
  occurredAt: new Date().toISOString(),
  payload: { n: 1 },
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within timeout');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function nextEvent(subscribe: (h: (e: DomainEvent) => void) => void, timeoutMs = 5000): Promise<DomainEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event within timeout')), timeoutMs);
    subscribe((e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

const buses = [
  { kind: 'in-process', url: undefined, skip: false as const },
  { kind: 'redis', url: REDIS_URL, skip: REDIS_URL ? (false as const) : 'REDIS_URL is not set' },
];
if (!REDIS_URL) console.warn('[tests] Redis event bus tests are skipped: REDIS_URL is not set (CI sets it).');

describe.each(buses)('event bus: $kind', ({ kind, url, skip }) => {
  it.skipIf(skip)(`delivers published events to subscribers of the type${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}`;
    const publisher = createEventBus({ redisUrl: url, channelPrefix: prefix, logger: silentLogger });
    // With Redis, a second bus stands for another replica: events cross processes.
    const subscriber = kind === 'redis' ? createEventBus({ redisUrl: url, channelPrefix: prefix, logger: silentLogger }) : publisher;
    try {
      const got: DomainEvent[] = [];
      const unsubscribe = await subscriber.subscribe('ThingHappened', (e) => got.push(e));
      const other: DomainEvent[] = [];
      await subscriber.subscribe('OtherThing', (e) => other.push(e));
      await publisher.publish(event('s-1'));
      await waitFor(() => got.length === 1);
      expect(got[0]?.subjectId).toBe('s-1');
      expect(got[0]?.payload).toEqual({ n: 1 });
      expect(other).toHaveLength(0);

      // After unsubscribing nothing more arrives.
      await unsubscribe();
      await publisher.publish(event('s-2'));
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((e) => e.subjectId)).toEqual(['s-1']);
    } finally {
      await publisher.close();
      if (subscriber !== publisher) await subscriber.close();
    }
  });

  it.skipIf(skip)('a throwing handler does not stop other handlers', async () => {
    const bus = createEventBus({ redisUrl: url, channelPrefix: `test-${randomBytes(4).toString('hex')}`, logger: silentLogger });
    try {
      await bus.subscribe('ThingHappened', () => {
        throw new Error('handler bug');
      });
      const received = nextEvent((h) => void bus.subscribe('ThingHappened', h));
      await new Promise((r) => setTimeout(r, 100));
      await bus.publish(event('s-3'));
      expect((await received).subjectId).toBe('s-3');
    } finally {
      await bus.close();
    }
  });
});
