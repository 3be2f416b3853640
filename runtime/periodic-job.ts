// Runs a job on an interval: never two runs at once (the next is scheduled when the last ends),
// never keeping the process alive on its own, and stoppable mid-run.
import type { Logger } from './logger.ts';
import { withSpan } from './tracing.ts';

export interface PeriodicJob {
  start(): void;
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
}

/** `name` says what the job does in its log lines ("<name> done", "<name> failed"). */
export function createPeriodicJob(opts: { name: string; intervalMs: number; run: () => Promise<unknown>; logger: Logger }): PeriodicJob {
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
    // A root span per run when tracing is on (its SQL statements are its children).
    running = withSpan(`job ${opts.name}`, { attributes: { 'job.name': opts.name } }, () => opts.run())
      .then(
        (result) => opts.logger.debug({ result }, `${opts.name} done`),
        (err: unknown) => opts.logger.error({ err }, `${opts.name} failed`),
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
