// The bounded queue between an event producer and a consumer that may be slow or may leave.
import { describe, expect, it } from 'vitest';
import { EventQueue, filterAsync, QueueOverflowError } from '../../runtime/event-queue.ts';

describe('EventQueue', () => {
  it('hands items over in order, waiting for the producer when empty', async () => {
    const queue = new EventQueue<number>({ limit: 10 });
    queue.push(1);
    queue.push(2);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    const waiting = queue.next();
    queue.push(3);
    expect(await waiting).toEqual({ value: 3, done: false });
  });

  it('return() ends a consumer waiting in next() at once and closes exactly once', async () => {
    let closes = 0;
    const queue = new EventQueue<number>({ limit: 10, onClose: () => void (closes += 1) });
    const waiting = queue.next();
    await queue.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    await queue.return();
    queue.end();
    expect(closes).toBe(1);
    expect(queue.push(4)).toBe(false);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('end() and fail() let the consumer read what is queued first', async () => {
    const ended = new EventQueue<string>({ limit: 10 });
    ended.push('a');
    ended.end();
    expect(await ended.next()).toEqual({ value: 'a', done: false });
    expect(await ended.next()).toEqual({ value: undefined, done: true });

    const failed = new EventQueue<string>({ limit: 10 });
    failed.push('b');
    failed.fail(new Error('upstream gone'));
    expect(await failed.next()).toEqual({ value: 'b', done: false });
    await expect(failed.next()).rejects.toThrow('upstream gone');
    expect(await failed.next()).toEqual({ value: undefined, done: true });
  });

  it('overflows past its limit: drops the backlog, tells onOverflow, and fails the consumer', async () => {
    let overflows = 0;
    let closes = 0;
    const queue = new EventQueue<number>({ limit: 2, onOverflow: () => void (overflows += 1), onClose: () => void (closes += 1) });
    expect(queue.push(1)).toBe(true);
    expect(queue.push(2)).toBe(true);
    expect(queue.push(3)).toBe(false);
    expect(queue.push(4)).toBe(false);
    expect(queue.size).toBe(0);
    expect([overflows, closes]).toEqual([1, 1]);
    await expect(queue.next()).rejects.toBeInstanceOf(QueueOverflowError);
  });

  it("with overflow 'end' the consumer just sees the end (its connection is being closed anyway)", async () => {
    const queue = new EventQueue<number>({ limit: 1, overflow: 'end' });
    queue.push(1);
    queue.push(2);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('never grows past the limit while the consumer does not read', () => {
    const queue = new EventQueue<number>({ limit: 100, overflow: 'end' });
    for (let i = 0; i < 100_000; i++) queue.push(i);
    expect(queue.size).toBeLessThanOrEqual(100);
    expect(queue.done).toBe(true);
  });
});

describe('filterAsync', () => {
  it('keeps matching items in order, with an async predicate, and return() reaches the source', async () => {
    let closed = false;
    const source = new EventQueue<number>({ limit: 10, onClose: () => void (closed = true) });
    const evens = filterAsync(source, async (n) => n % 2 === 0);
    for (const n of [1, 2, 3, 4]) source.push(n);
    expect(await evens.next()).toEqual({ value: 2, done: false });
    expect(await evens.next()).toEqual({ value: 4, done: false });
    const waiting = evens.next();
    await evens.return(undefined);
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(closed).toBe(true);
  });
});
