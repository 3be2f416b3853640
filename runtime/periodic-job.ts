// Runs a job on an interval: never two runs at once (the next is scheduled when the last ends),
// never keeping the process alive on its own, and stoppable mid-run.
import type { Logger } from './logger.ts';
import { withSpan } from './tracing.ts';

export interface PeriodicJob {
  start(): void;
  /** Runs as soon as it can: now when idle, or once more right after the run in progress (work was queued). */
  kick(): void;
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
}

/** `name` says what the job does in its log lines ("<name> done", "<name> failed"). */
export function createPeriodicJob(opts: {
  name: string;
  intervalMs: number;
  run: () => Promise<unknown>;
  logger: Logger;
  /** The first run at start() rather than an interval later. */
  runAtStart?: boolean;
}): PeriodicJob {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;
  let again = false;

  const schedule = (ms = opts.intervalMs) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(tick, ms);
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
        const more = again;
        again = false;
        schedule(more ? 0 : opts.intervalMs);
      });
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule(opts.runAtStart ? 0 : opts.intervalMs);
    },
    kick() {
      if (stopped) return;
      if (running) again = true;
      else schedule(0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
