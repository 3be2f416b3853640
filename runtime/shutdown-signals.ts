import type { Logger } from './logger.ts';

/**
 * How close together two signals must arrive to count as one. One Ctrl+C reaches a process run
 * through npm (or tsx) several times: the terminal sends SIGINT to the whole process group, and
 * npm, the shell and tsx each forward it again, a few milliseconds apart (more under load). A
 * person pressing Ctrl+C a second time to force the exit takes far longer than this.
 */
export const SIGNAL_REPEAT_WINDOW_MS = 500;

/**
 * Stops the given services on SIGINT/SIGTERM/SIGHUP (or when npm, its parent, exits), then exits 0
 * (1 if stopping failed). The first
 * signal starts a graceful stop: in-flight requests finish (within SHUTDOWN_TIMEOUT_MS), new ones
 * are told to go elsewhere. Repeats within SIGNAL_REPEAT_WINDOW_MS are the same signal delivered
 * twice and are ignored; a later one is deliberate and forces the exit at once.
 */
export interface StopOnSignalsOptions {
  /** Run synchronously before a forced exit (e.g. closeSqliteNow: the databases close cleanly even then). */
  beforeForcedExit?: () => void;
  now?: () => number;
}

export function stopOnSignals(logger: Logger, stop: () => Promise<void>, options: StopOnSignalsOptions = {}): void {
  const now = options.now ?? Date.now;
  let firstAt: number | undefined;
  const handler = (signal: NodeJS.Signals | 'parent exited') => {
    if (firstAt !== undefined) {
      if (now() - firstAt < SIGNAL_REPEAT_WINDOW_MS) {
        logger.debug({ signal }, 'signal repeated by a parent process: already shutting down');
        return;
      }
      logger.warn({ signal }, 'second signal: exiting now');
      options.beforeForcedExit?.();
      process.exit(1);
    }
    firstAt = now();
    logger.info({ signal, force: `send ${signal === 'parent exited' ? 'a signal' : signal} again to exit at once` }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  // A closed terminal (or a process manager) sends SIGHUP: stop, rather than die mid-write.
  process.on('SIGHUP', handler);
  watchNpmParent(() => handler('parent exited'));
}

/**
 * Run by npm (`npm start`, `npm run gateway`), this process is npm's child. npm forwards SIGINT and
 * SIGTERM, but a SIGHUP or SIGKILL kills npm alone and would leave this process running, an
 * orphan still holding its ports: when npm goes, stop as if signalled.
 */
function watchNpmParent(onExit: () => void): void {
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onExit();
  }, 500);
  timer.unref();
}
