import type { Logger } from './logger.ts';

/**
 * How close together two signals must arrive to count as one. One Ctrl+C reaches a process run
 * through npm (or tsx) several times: the terminal sends SIGINT to the whole process group, and
 * npm, the shell and tsx each forward it again, a few milliseconds apart (more under load). A
 * person pressing Ctrl+C a second time to force the exit takes far longer than this.
 */
export const SIGNAL_REPEAT_WINDOW_MS = 500;

/**
 * Stops the given services on SIGINT/SIGTERM, then exits 0 (1 if stopping failed). The first
 * signal starts a graceful stop: in-flight requests finish (within SHUTDOWN_TIMEOUT_MS), new ones
 * are told to go elsewhere. Repeats within SIGNAL_REPEAT_WINDOW_MS are the same signal delivered
 * twice and are ignored; a later one is deliberate and forces the exit at once.
 */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>, now: () => number = Date.now): void {
  let firstAt: number | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (firstAt !== undefined) {
      if (now() - firstAt < SIGNAL_REPEAT_WINDOW_MS) {
        logger.debug({ signal }, 'signal repeated by a parent process: already shutting down');
        return;
      }
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    firstAt = now();
    logger.info({ signal }, 'shutting down (send the signal again to exit at once)');
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
}
