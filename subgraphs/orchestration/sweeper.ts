// Runs the lease sweep on an interval: never two sweeps at once (the next is scheduled when the
// last ends), never keeping the process alive on its own, and stoppable mid-sweep.
import type { Logger } from '../../runtime/logger.ts';

export interface Sweeper {
  start(): void;
  /** Stops scheduling and waits for a sweep in progress to finish. */
  stop(): Promise<void>;
}

export function createSweeper(opts: { intervalMs: number; sweep: () => Promise<unknown>; logger: Logger }): Sweeper {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(tick, opts.intervalMs);
    timer.unref();
  };

  const tick = () => {
    timer = undefined;
    running = opts
      .sweep()
      .then(
        (result) => opts.logger.debug({ result }, 'lease sweep done'),
        (err: unknown) => opts.logger.error({ err }, 'lease sweep failed'),
      )
      .finally(() => {
        running = undefined;
        schedule();
      });
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
