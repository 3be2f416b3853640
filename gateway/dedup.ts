// In-flight deduplication: while a read for a key is on its way, callers asking for the same key
// wait for that one instead of sending their own. Nothing is kept after it settles, so this is not
// a cache: an answer is at most one subgraph round trip older than the question. The gateway uses
// it for identical subgraph queries (same subgraph, operation, variables and forwarded headers),
// never for mutations.
//
// Read-your-writes: a write (a mutation sent through the same instance) starts a new epoch when it
// is sent and again when it is answered, and a read only joins reads of its own epoch. So a client
// that reads after its write was answered never gets an answer read before that write. Writes
// through another gateway replica are not seen: there a read may get an answer that is one
// subgraph round trip old; SUBGRAPH_DEDUP=false removes even that.
import { env, loadConfig } from '../runtime/config.ts';

export const dedupSpec = {
  SUBGRAPH_DEDUP: env.bool('share one subgraph request among identical queries in flight at the same time (never mutations)', true),
};

export function loadDedupConfig(source: Record<string, string | undefined> = process.env): { enabled: boolean } {
  return { enabled: loadConfig(dedupSpec, source).SUBGRAPH_DEDUP };
}

/** One per gateway, shared by its subgraph clients (so any write starts a new epoch for all), or none when SUBGRAPH_DEDUP=false. */
export function createDedup<T>(source: Record<string, string | undefined> = process.env): InflightDedup<T> | undefined {
  return loadDedupConfig(source).enabled ? new InflightDedup<T>() : undefined;
}

export interface DedupStats {
  /** Requests really sent. */
  sent: number;
  /** Callers served by a request another caller sent. */
  joined: number;
  /** Keys in flight now. */
  inFlight: number;
}

export class InflightDedup<T> {
  private readonly pending = new Map<string, Promise<T>>();
  private epoch = 0;
  private sent = 0;
  private joined = 0;

  /**
   * @param maxInFlight Distinct keys tracked at once; beyond it requests simply go out on their
   *   own, so a flood of different queries cannot grow the map without bound.
   */
  constructor(private readonly maxInFlight = 10_000) {}

  /** A read: send() runs at most once per key and epoch at a time; every concurrent caller gets its outcome. */
  run(readKey: string, send: () => Promise<T>): Promise<T> {
    const key = `${this.epoch}\n${readKey}`;
    const existing = this.pending.get(key);
    if (existing) {
      this.joined += 1;
      return existing;
    }
    this.sent += 1;
    if (this.pending.size >= this.maxInFlight) return send();
    const promise = send().finally(() => this.pending.delete(key));
    this.pending.set(key, promise);
    return promise;
  }

  /** A write: always sent; reads that start after it was sent never join reads from before. */
  async write<R>(send: () => Promise<R>): Promise<R> {
    this.epoch += 1;
    try {
      return await send();
    } finally {
      this.epoch += 1;
    }
  }

  stats(): DedupStats {
    return { sent: this.sent, joined: this.joined, inFlight: this.pending.size };
  }
}
