import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import { silentLogger } from '../support/databases.ts';

/** A run whose end the test decides. */
function controlledRun() {
  const runs: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const run = () =>
    new Promise<void>((resolve, reject) => {
      runs.push({ resolve, reject });
    });
  return { run, runs };
}

describe('periodic job', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs on its interval and never starts a run while one is in progress', async () => {
    const { run, runs } = controlledRun();
    const job = createPeriodicJob({ name: 'test job', intervalMs: 100, run, logger: silentLogger });
    job.start();
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(1);
    // A slow run: however long it takes, no second one starts beside it.
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await job.stop();
  });

  it('keeps running after a failed run', async () => {
    const { run, runs } = controlledRun();
    const job = createPeriodicJob({ name: 'test job', intervalMs: 50, run, logger: silentLogger });
    job.start();
    await vi.advanceTimersByTimeAsync(50);
    runs[0]!.reject(new Error('database unavailable'));
    await vi.advanceTimersByTimeAsync(50);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await job.stop();
  });

  it('stops scheduling, and stop() waits for the run in progress', async () => {
    const { run, runs } = controlledRun();
    const job = createPeriodicJob({ name: 'test job', intervalMs: 10, run, logger: silentLogger });
    job.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(runs).toHaveLength(1);
    let stopped = false;
    const stopping = job.stop().then(() => {
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

  it('runs at start when asked, and a kick runs it at once, or once more right after the run in progress', async () => {
    const { run, runs } = controlledRun();
    const job = createPeriodicJob({ name: 'test job', intervalMs: 1_000, run, logger: silentLogger, runAtStart: true });
    job.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(1);
    job.kick();
    job.kick();
    await vi.advanceTimersByTimeAsync(0);
    // Never two at once: the kicks wait for the run in progress, and count as one.
    expect(runs).toHaveLength(1);
    runs[0]?.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(2);
    runs[1]?.resolve();
    await vi.advanceTimersByTimeAsync(999);
    expect(runs).toHaveLength(2);
    job.kick();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(3);
    runs[2]?.resolve();
    await job.stop();
    job.kick();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs).toHaveLength(3);
  });

  it('does not keep the process alive on its own', () => {
    const { run } = controlledRun();
    const job = createPeriodicJob({ name: 'test job', intervalMs: 10, run, logger: silentLogger });
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    job.start();
    const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    setTimeoutSpy.mockRestore();
    return job.stop();
  });
});
