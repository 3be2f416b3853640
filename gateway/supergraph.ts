import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ApolloGateway, type SupergraphSdlHook } from '@apollo/gateway';
import type { Logger } from '../runtime/logger.ts';
import { toGatewaySupergraph } from './auth/supergraph-policy.ts';

/** The supergraph file is missing or unusable when the gateway starts. */
export class SupergraphFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SupergraphFileError';
  }
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Throws (with the reason) unless the gateway can serve this SDL: it parses, is a valid
 * supergraph, and a query planner builds from it. A throwaway gateway does the checking so it is
 * exactly the work the serving gateway does on update; done first, a bad file can never leave the
 * serving gateway half-updated.
 */
export async function validateSupergraph(sdl: string): Promise<void> {
  if (sdl.trim() === '') throw new Error('the file is empty');
  const probe = new ApolloGateway({ supergraphSdl: toGatewaySupergraph(sdl), logger: quiet, validateSupergraph: true });
  try {
    await probe.load();
  } finally {
    await probe.stop();
  }
}

/** Reads and validates the supergraph the gateway starts with. */
export async function readSupergraph(path: string): Promise<string> {
  let sdl: string;
  try {
    sdl = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SupergraphFileError(
      code === 'ENOENT'
        ? `Supergraph file not found: ${path}\nRun \`npm run compose\` to create it, or set SUPERGRAPH_PATH to an existing file.`
        : `Cannot read the supergraph file ${path}: ${(err as Error).message}`,
    );
  }
  try {
    await validateSupergraph(sdl);
  } catch (err) {
    throw new SupergraphFileError(`The supergraph file ${path} is not usable: ${(err as Error).message}`);
  }
  return sdl;
}

export interface WatchedSupergraphOptions {
  path: string;
  /** The content read (and validated) at start. */
  initialSdl: string;
  /** False serves initialSdl for the life of the process. */
  watch: boolean;
  /** Stat-polling interval besides change events; 0 relies on events alone. */
  pollMs: number;
  /** Quiet time after the last change before reloading, so a file being written is read once, whole. */
  debounceMs?: number;
  logger: Logger;
}

/**
 * The gateway's supergraphSdl hook for a file: serves initialSdl, then on every change validates
 * the new content and hands it to the gateway's update callback. The gateway swaps schema, query
 * planner and data sources for new requests only; requests already executing keep the ones they
 * started with, so a swap drops nothing. Invalid content is logged and the current schema stays.
 *
 * Change events come from fs.watch on the folder (the file itself may be replaced by a rename,
 * which a watch on the old inode would miss) plus stat polling, which also covers filesystems
 * where fs.watch is unsupported or silent (network mounts, some container volumes).
 */
export function watchedSupergraph(options: WatchedSupergraphOptions): SupergraphSdlHook {
  const { path, logger } = options;
  const debounceMs = options.debounceMs ?? 150;

  return async ({ update }) => {
    let current = options.initialSdl;
    let lastRejected: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let rerun = false;
    let closed = false;
    let watcher: FSWatcher | undefined;
    let polling = false;

    async function reload(): Promise<void> {
      let sdl: string;
      try {
        sdl = await readFile(path, 'utf8');
      } catch (err) {
        logger.warn({ path, reason: (err as Error).message }, 'supergraph file unreadable; still serving the current schema');
        return;
      }
      if (sdl === current || sdl === lastRejected || closed) return;
      try {
        await validateSupergraph(sdl);
      } catch (err) {
        lastRejected = sdl;
        logger.error({ path, reason: (err as Error).message }, 'supergraph file rejected; still serving the current schema');
        return;
      }
      if (closed) return;
      try {
        update(toGatewaySupergraph(sdl));
      } catch (err) {
        logger.error({ path, reason: (err as Error).message }, 'supergraph update failed; still serving the current schema');
        return;
      }
      current = sdl;
      lastRejected = undefined;
      logger.info({ path }, 'supergraph reloaded');
    }

    // One reload at a time: the gateway refuses an update while another is in progress.
    function run(): void {
      if (running) {
        rerun = true;
        return;
      }
      running = reload().finally(() => {
        running = undefined;
        if (rerun && !closed) {
          rerun = false;
          run();
        }
      });
    }

    function changed(): void {
      if (closed) return;
      clearTimeout(timer);
      timer = setTimeout(run, debounceMs);
    }

    function onStat(now: Stats, before: Stats): void {
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) changed();
    }

    function startPolling(intervalMs: number): void {
      if (polling) return;
      polling = true;
      watchFile(path, { interval: intervalMs, persistent: false }, onStat);
    }

    if (options.watch) {
      const file = basename(path);
      try {
        watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
          if (name === null || name === file) changed();
        });
        watcher.on('error', (err) => {
          logger.warn({ path, reason: err.message }, 'watching the supergraph folder failed; polling the file instead');
          watcher?.close();
          startPolling(options.pollMs || 1000);
        });
      } catch (err) {
        logger.warn({ path, reason: (err as Error).message }, 'cannot watch the supergraph folder; polling the file instead');
        startPolling(options.pollMs || 1000);
      }
      if (options.pollMs > 0) startPolling(options.pollMs);
    }

    return {
      // The stock gateway refuses the access-control links composition marks `for: SECURITY`;
      // the gateway enforces those itself (auth/), so it gets them as plain metadata.
      supergraphSdl: toGatewaySupergraph(options.initialSdl),
      async cleanup() {
        closed = true;
        clearTimeout(timer);
        watcher?.close();
        if (polling) unwatchFile(path, onStat);
        await running;
      },
    };
  };
}
