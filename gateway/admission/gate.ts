import type { ConcurrencyLimit } from './limit.ts';

/**
 * Admission: at most `limit.current` requests in flight; past it, a bounded queue where a request
 * waits up to a deadline; past that, a refusal at once. A refusal costs microseconds, so under ten
 * times the load a service can carry, the admitted keep their latency and the rest learn at once
 * to come back later, instead of everyone waiting in an unbounded queue (the event loop's).
 *
 * Two lanes: `reserved` callers (operators, agents) may use the whole limit and are served first
 * from the queue; `standard` callers may use all but the reserved share of it.
 */
export type Lane = 'reserved' | 'standard';

export type ShedReason = 'queue_full' | 'queue_timeout' | 'closing';

export interface Permit {
  /** Call once when the request has finished; `sample` false for an outcome that says nothing of latency (an abort). */
  release(sample?: boolean): void;
}

export interface Shed {
  shed: ShedReason;
}

export interface GateStats {
  limit: number;
  inFlight: number;
  queued: number;
  admitted: Record<Lane, number>;
  shed: Record<ShedReason, number>;
}

interface Waiter {
  lane: Lane;
  resolve(outcome: Permit | Shed): void;
  timer: NodeJS.Timeout;
}

export interface GateOptions {
  limit: ConcurrencyLimit;
  maxQueued: number;
  queueTimeoutMs: number;
  /** Share of the limit (0-1) only the reserved lane may use. */
  reservedShare: number;
  /** Milliseconds since some origin (performance.now in production, a fake clock in tests). */
  now?: () => number;
}

export class AdmissionGate {
  private inFlight = 0;
  private closed = false;
  private readonly queues: Record<Lane, Waiter[]> = { reserved: [], standard: [] };
  private readonly admitted: Record<Lane, number> = { reserved: 0, standard: 0 };
  private readonly shedCount: Record<ShedReason, number> = { queue_full: 0, queue_timeout: 0, closing: 0 };
  private readonly now: () => number;

  constructor(private readonly options: GateOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** A permit at once, a promise of one (queued), or a refusal at once. */
  enter(lane: Lane): Permit | Shed | Promise<Permit | Shed> {
    if (this.closed) return this.refuse('closing');
    // A lane's own waiters go first; a reserved caller passes standard ones waiting for their share.
    if (this.queues[lane].length === 0 && this.inFlight < this.capacity(lane)) return this.admit(lane);
    if (this.queued() >= this.options.maxQueued) return this.refuse('queue_full');
    return new Promise<Permit | Shed>((resolve) => {
      const waiter: Waiter = {
        lane,
        resolve,
        timer: setTimeout(() => {
          const queue = this.queues[lane];
          const at = queue.indexOf(waiter);
          if (at >= 0) queue.splice(at, 1);
          resolve(this.refuse('queue_timeout'));
        }, this.options.queueTimeoutMs),
      };
      waiter.timer.unref();
      this.queues[lane].push(waiter);
    });
  }

  /** True when a new request would not be admitted at once: new long-lived streams are refused then. */
  overloaded(): boolean {
    return this.closed || this.queued() > 0 || this.inFlight >= this.options.limit.current;
  }

  stats(): GateStats {
    return { limit: this.options.limit.current, inFlight: this.inFlight, queued: this.queued(), admitted: { ...this.admitted }, shed: { ...this.shedCount } };
  }

  /** Refuses everything queued and everything new (a draining gateway). */
  close(): void {
    this.closed = true;
    for (const lane of ['reserved', 'standard'] as const) {
      for (const waiter of this.queues[lane].splice(0)) {
        clearTimeout(waiter.timer);
        waiter.resolve(this.refuse('closing'));
      }
    }
  }

  private queued(): number {
    return this.queues.reserved.length + this.queues.standard.length;
  }

  private capacity(lane: Lane): number {
    const limit = this.options.limit.current;
    if (lane === 'reserved') return limit;
    // The standard lane always keeps at least one slot, whatever the share.
    return Math.max(1, Math.floor(limit * (1 - this.options.reservedShare)));
  }

  private refuse(reason: ShedReason): Shed {
    this.shedCount[reason] += 1;
    return { shed: reason };
  }

  private admit(lane: Lane): Permit {
    this.inFlight += 1;
    this.admitted[lane] += 1;
    const started = this.now();
    const inFlightAtStart = this.inFlight;
    let released = false;
    return {
      release: (sample = true) => {
        if (released) return;
        released = true;
        this.inFlight -= 1;
        if (sample) this.options.limit.sample(this.now() - started, inFlightAtStart);
        this.drain();
      },
    };
  }

  /** Hands free slots to waiters: reserved ones first, then standard ones, each in arrival order. */
  private drain(): void {
    for (const lane of ['reserved', 'standard'] as const) {
      const queue = this.queues[lane];
      while (queue.length > 0 && this.inFlight < this.capacity(lane)) {
        const waiter = queue.shift() as Waiter;
        clearTimeout(waiter.timer);
        waiter.resolve(this.admit(lane));
      }
    }
  }
}

export function isShed(outcome: Permit | Shed): outcome is Shed {
  return 'shed' in outcome;
}
