import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventBus, type DomainEvent } from '../../runtime/events.ts';
import { REDIS_URL, silentLogger } from '../support/databases.ts';
import { startRedisProxy } from '../support/redis-proxy.ts';

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

// Redis taken away from one bus (a TCP relay in front of the shared server: other suites keep it).
describe.skipIf(!REDIS_URL)('redis event bus when Redis fails', () => {
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const c of opened.splice(0).reverse()) await c.close();
  });

  async function setup() {
    const proxy = await startRedisProxy(REDIS_URL ?? '');
    opened.push(proxy);
    const prefix = `test-${randomBytes(4).toString('hex')}`;
    const bus = createEventBus({
      redisUrl: proxy.url,
      channelPrefix: prefix,
      logger: silentLogger,
      redisTimeouts: { connectTimeoutMs: 300, commandTimeoutMs: 300 },
    });
    const publisher = createEventBus({ redisUrl: REDIS_URL, channelPrefix: prefix, logger: silentLogger });
    opened.push(bus, publisher);
    return { proxy, bus, publisher };
  }

  it('a SUBSCRIBE that fails fails every subscriber waiting on it, leaves nothing behind, and the next subscriber sends it again', async () => {
    const { proxy, bus, publisher } = await setup();
    await bus.ping(); // connected
    proxy.cut();
    // Both wait on the same pending SUBSCRIBE; it times out for both.
    const first = bus.subscribe('ThingHappened', () => {});
    const second = bus.subscribe('ThingHappened', () => {});
    await expect(first).rejects.toThrow();
    await expect(second).rejects.toThrow();
    proxy.restore();
    const got: string[] = [];
    await waitForAsync(async () => {
      try {
        await bus.subscribe('ThingHappened', (e) => got.push(e.subjectId));
        return true;
      } catch {
        return false; // still reconnecting: a later subscriber tries again
      }
    });
    await publisher.publish(event('heard'));
    await waitForAsync(() => got.length === 1);
    expect(got).toEqual(['heard']);
  });

  it('subscribers of a channel while its SUBSCRIBE is pending share it: one SUBSCRIBE, every handler hears', async () => {
    const { proxy, bus, publisher } = await setup();
    const a: string[] = [];
    const b: string[] = [];
    await Promise.all([bus.subscribe('Shared', (e) => a.push(e.subjectId)), bus.subscribe('Shared', (e) => b.push(e.subjectId))]);
    expect(proxy.sent().match(/SUBSCRIBE/gi)?.length).toBe(1);
    await publisher.publish(event('both'), 'Shared');
    await waitForAsync(() => a.length === 1 && b.length === 1);
  });

  it('after a reconnect every channel is subscribed again, then the reconnect listeners run', async () => {
    const { proxy, bus, publisher } = await setup();
    const got: string[] = [];
    await bus.subscribe('One', (e) => got.push(`one:${e.subjectId}`));
    await bus.subscribe('Two', (e) => got.push(`two:${e.subjectId}`));
    let reconnects = 0;
    bus.onReconnect(() => (reconnects += 1));
    proxy.cut();
    await publisher.publish(event('lost'), 'One');
    proxy.restore();
    await waitForAsync(() => reconnects === 1);
    await publisher.publish(event('x'), 'One');
    await publisher.publish(event('y'), 'Two');
    await waitForAsync(() => got.length === 2);
    expect(got).toEqual(['one:x', 'two:y']);
  });
});

async function waitForAsync(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met within timeout');
    await new Promise((r) => setTimeout(r, 20));
  }
}
