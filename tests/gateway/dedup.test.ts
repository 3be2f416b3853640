import { describe, expect, it } from 'vitest';
import { createDedup, InflightDedup, loadDedupConfig } from '../../gateway/dedup.ts';
import { ConfigError } from '../../runtime/config.ts';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('InflightDedup', () => {
  it('sends once for concurrent callers of one key and gives all of them the outcome', async () => {
    const dedup = new InflightDedup<string>();
    const answer = deferred<string>();
    let sends = 0;
    const send = () => {
      sends += 1;
      return answer.promise;
    };
    const callers = [dedup.run('k', send), dedup.run('k', send), dedup.run('k', send)];
    expect(dedup.stats()).toEqual({ sent: 1, joined: 2, inFlight: 1 });
    answer.resolve('done');
    expect(await Promise.all(callers)).toEqual(['done', 'done', 'done']);
    expect(sends).toBe(1);
    expect(dedup.stats().inFlight).toBe(0);
  });

  it('keeps nothing once settled: a later caller sends again', async () => {
    const dedup = new InflightDedup<number>();
    let sends = 0;
    const send = async () => ++sends;
    expect(await dedup.run('k', send)).toBe(1);
    expect(await dedup.run('k', send)).toBe(2);
    expect(dedup.stats()).toEqual({ sent: 2, joined: 0, inFlight: 0 });
  });

  it('never mixes keys', async () => {
    const dedup = new InflightDedup<string>();
    const results = await Promise.all([dedup.run('a', async () => 'A'), dedup.run('b', async () => 'B')]);
    expect(results).toEqual(['A', 'B']);
    expect(dedup.stats().joined).toBe(0);
  });

  it('passes a failure to every waiter and forgets the key', async () => {
    const dedup = new InflightDedup<string>();
    const answer = deferred<string>();
    const first = dedup.run('k', () => answer.promise);
    const second = dedup.run('k', () => Promise.resolve('never sent'));
    answer.reject(new Error('connect ECONNREFUSED'));
    await expect(first).rejects.toThrow('ECONNREFUSED');
    await expect(second).rejects.toThrow('ECONNREFUSED');
    expect(await dedup.run('k', async () => 'recovered')).toBe('recovered');
  });

  it('does not let a read that starts during or after a write join a read from before it', async () => {
    const dedup = new InflightDedup<string>();
    const oldRead = deferred<string>();
    const write = deferred<string>();
    const first = dedup.run('k', () => oldRead.promise);
    const writing = dedup.write(() => write.promise);
    const duringWrite = dedup.run('k', async () => 'fresh during');
    expect(await duringWrite).toBe('fresh during');
    write.resolve('written');
    expect(await writing).toBe('written');
    const afterWrite = dedup.run('k', async () => 'fresh after');
    expect(await afterWrite).toBe('fresh after');
    oldRead.resolve('stale');
    expect(await first).toBe('stale');
    expect(dedup.stats()).toEqual({ sent: 3, joined: 0, inFlight: 0 });
  });

  it('still shares reads that start in the same epoch after a write', async () => {
    const dedup = new InflightDedup<string>();
    await dedup.write(async () => 'done');
    const read = deferred<string>();
    const results = Promise.all([dedup.run('k', () => read.promise), dedup.run('k', () => read.promise)]);
    read.resolve('v');
    expect(await results).toEqual(['v', 'v']);
    expect(dedup.stats().joined).toBe(1);
  });

  it('stops tracking new keys at its bound, and still answers them', async () => {
    const dedup = new InflightDedup<string>(2);
    const hold = deferred<string>();
    void dedup.run('a', () => hold.promise);
    void dedup.run('b', () => hold.promise);
    let sends = 0;
    const send = async () => `c${++sends}`;
    const results = await Promise.all([dedup.run('c', send), dedup.run('c', send)]);
    expect(results.sort()).toEqual(['c1', 'c2']);
    expect(dedup.stats().inFlight).toBe(2);
    hold.resolve('x');
  });
});

describe('SUBGRAPH_DEDUP', () => {
  it('defaults to on and can be turned off', () => {
    expect(loadDedupConfig({})).toEqual({ enabled: true });
    expect(loadDedupConfig({ SUBGRAPH_DEDUP: 'false' })).toEqual({ enabled: false });
    expect(createDedup({})).toBeInstanceOf(InflightDedup);
    expect(createDedup({ SUBGRAPH_DEDUP: 'false' })).toBeUndefined();
  });

  it('rejects a value that is not a boolean, naming the variable', () => {
    expect(() => loadDedupConfig({ SUBGRAPH_DEDUP: 'sometimes' })).toThrow(ConfigError);
    expect(() => loadDedupConfig({ SUBGRAPH_DEDUP: 'sometimes' })).toThrow(/SUBGRAPH_DEDUP/);
  });
});
