// Presence as this replica observes it. Every collaboration subscription a caller holds is a
// live connection: registered when it starts, removed when it ends (the client unsubscribed, or
// the gateway closed it because the client's socket died or stopped answering pings, or the
// gateway's own connection to this replica closed). Connections live in the shared database
// with an expiry this replica keeps pushing forward; a replica that dies stops doing so, and the
// sweeper (on any replica) takes its connections offline once they expire. Agents without a
// subscription stay present with heartbeats. Changes are PresenceChanged events (outbox).
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../runtime/logger.ts';
import type { ParticipantKey } from './domain.ts';
import type { CollaborationStore } from './store.ts';
import type { PresenceRow } from './store/rows.ts';

export interface PresenceOptions {
  /** How long a subscription's connection row lives without a refresh (a dead replica's expire after this). */
  ttlMs: number;
  /** How long one heartbeat keeps its sender present. */
  heartbeatTtlMs: number;
}

/** The replica id heartbeats are registered under: no replica refreshes them. */
const HEARTBEATS = 'heartbeat';

export class PresenceTracker {
  /** This process: its connections are refreshed together. */
  readonly replicaId = randomUUID();
  private readonly live = new Map<string, { tenantId: string; key: ParticipantKey }>();

  constructor(
    private readonly store: CollaborationStore,
    readonly options: PresenceOptions,
    private readonly logger: Logger,
  ) {}

  get connections(): number {
    return this.live.size;
  }

  /** The caller is present while `source` is open: counted now, uncounted when it ends however it ends. */
  async track<T>(tenantId: string, key: ParticipantKey, source: AsyncGenerator<T, undefined, unknown>): Promise<AsyncGenerator<T, undefined, unknown>> {
    const id = randomUUID();
    this.live.set(id, { tenantId, key });
    try {
      await this.store.connect(tenantId, key, id, this.replicaId, this.options.ttlMs);
    } catch (err) {
      this.live.delete(id);
      await source.return(undefined);
      throw err;
    }
    let ended = false;
    const end = async () => {
      if (ended) return;
      ended = true;
      await this.close(id);
    };
    const tracked: AsyncGenerator<T, undefined, unknown> = {
      async next() {
        try {
          const result = await source.next();
          if (result.done) await end();
          return result;
        } catch (err) {
          await end();
          throw err;
        }
      },
      async return() {
        await end();
        return source.return(undefined);
      },
      async throw(err) {
        await end();
        return source.throw(err);
      },
      [Symbol.asyncIterator]() {
        return tracked;
      },
    };
    return tracked;
  }

  private async close(id: string): Promise<void> {
    const c = this.live.get(id);
    if (!c) return;
    this.live.delete(id);
    try {
      await this.store.disconnect(c.tenantId, c.key, id);
    } catch (err) {
      // Its row expires and the sweeper takes it offline.
      this.logger.warn({ err }, 'presence disconnect failed; the connection expires instead');
    }
  }

  /** One heartbeat: present for heartbeatTtlMs from now. */
  heartbeat(tenantId: string, key: ParticipantKey): Promise<PresenceRow> {
    return this.store.connect(tenantId, key, `hb:${tenantId}:${key}`, HEARTBEATS, this.options.heartbeatTtlMs);
  }

  /** Periodic: pushes this replica's connections' expiry forward, then expires everyone's stale ones. */
  async maintain(): Promise<{ refreshed: number; expired: number }> {
    await this.store.refresh(this.replicaId, [...this.live.keys()], this.options.ttlMs);
    const expired = await this.store.sweepExpired();
    return { refreshed: this.live.size, expired };
  }

  /** Shutdown: this replica's connections end now rather than expire later. */
  async stop(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.close(id)));
  }
}
