import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSweeper } from '../../subgraphs/orchestration/sweeper.ts';
import { silentLogger } from '../support/databases.ts';

/** A sweep whose end the test decides. */
function controlledSweep() {
  const runs: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const sweep = () =>
    new Promise<void>((resolve, reject) => {
      runs.push({ resolve, reject });
    });
  return { sweep, runs };
}

describe('lease sweeper', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sweeps on its interval and never starts a sweep while one runs', async () => {
    const { sweep, runs } = controlledSweep();
    const sweeper = createSweeper({ intervalMs: 100, sweep, logger: silentLogger });
    sweeper.start();
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(1);
    // A slow sweep: however long it takes, no second one starts beside it.
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await sweeper.stop();
  });

  it('keeps sweeping after a failed sweep', async () => {
    const { sweep, runs } = controlledSweep();
    const sweeper = createSweeper({ intervalMs: 50, sweep, logger: silentLogger });
    sweeper.start();
    await vi.advanceTimersByTimeAsync(50);
    runs[0]!.reject(new Error('database unavailable'));
    await vi.advanceTimersByTimeAsync(50);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await sweeper.stop();
  });

  it('stops scheduling, and stop() waits for the sweep in progress', async () => {
    const { sweep, runs } = controlledSweep();
    const sweeper = createSweeper({ intervalMs: 10, sweep, logger: silentLogger });
    sweeper.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(runs).toHaveLength(1);
    let stopped = false;
    const stopping = sweeper.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(stopped).toBe(false);
    runs[0]!.resolve();
    await stopping;
    expect(stopped).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toHaveLength(1);
  });

  it('does not keep the process alive on its own', () => {
    const { sweep } = controlledSweep();
    const sweeper = createSweeper({ intervalMs: 10, sweep, logger: silentLogger });
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    sweeper.start();
    const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    setTimeoutSpy.mockRestore();
    return sweeper.stop();
  });
});
