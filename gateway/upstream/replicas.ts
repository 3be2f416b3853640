export type Balancing = 'least-pending' | 'round-robin';

/** One URL of a subgraph. Mutable counters, read by the balancer on every fetch. */
export interface Replica {
  readonly url: string;
  readonly origin: string;
  /** Path and query of the URL, as the dispatcher wants it. */
  readonly path: string;
  /** Requests sent to it and not yet answered. */
  pending: number;
  /** Consecutive failures; reset by any success. */
  failures: number;
  ejected: boolean;
}

export interface ReplicaState {
  url: string;
  healthy: boolean;
  pending: number;
}

export interface ReplicaSetOptions {
  urls: readonly string[];
  balancing: Balancing;
  /** Consecutive failures that eject a replica. */
  ejectAfter: number;
  probeMs: number;
  /** Resolves true when the replica answers again. Never rejects. */
  probe: (replica: Replica) => Promise<boolean>;
  onChange?: (replica: Replica) => void;
}

/**
 * The replicas of one subgraph: picks one per attempt, ejects one after consecutive failures and
 * probes it until it answers, then gives it traffic again. Each replica is its own origin in the
 * gateway's connection pool, so a restarted one gets new connections (unlike one URL behind a
 * TCP balancer, where kept-alive connections stay on the replicas that never went away).
 */
export class ReplicaSet {
  readonly replicas: readonly Replica[];
  private next = 0;
  private readonly probes = new Map<Replica, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: ReplicaSetOptions) {
    if (options.urls.length === 0) throw new Error('a replica set needs at least one URL');
    this.replicas = options.urls.map((url) => {
      const target = new URL(url);
      return { url, origin: target.origin, path: `${target.pathname}${target.search}`, pending: 0, failures: 0, ejected: false };
    });
  }

  /**
   * The replica for an attempt: a healthy one not tried yet by this fetch. With none left, a
   * healthy one again, then any: when every replica is ejected the traffic itself probes them
   * (the breaker, not ejection, is what stops sending to a subgraph that is down).
   */
  pick(tried?: ReadonlySet<Replica>): Replica {
    const all = this.replicas;
    if (all.length === 1) return all[0]!;
    return (
      this.choose((r) => !r.ejected && !tried?.has(r)) ??
      this.choose((r) => !r.ejected) ??
      this.choose((r) => !tried?.has(r)) ??
      // Not reached: the last filter admits every replica when tried holds them all.
      all[0]!
    );
  }

  private choose(admit: (replica: Replica) => boolean): Replica | undefined {
    const all = this.replicas;
    let best: Replica | undefined;
    // Round robin, and the start of the scan for least pending so that ties are spread too.
    const start = this.next;
    for (let i = 0; i < all.length; i++) {
      const replica = all[(start + i) % all.length]!;
      if (!admit(replica)) continue;
      if (this.options.balancing === 'round-robin') {
        best = replica;
        break;
      }
      if (best === undefined || replica.pending < best.pending) best = replica;
    }
    if (best) this.next = (all.indexOf(best) + 1) % all.length;
    return best;
  }

  /** The first healthy replica in configured order: for long-lived connections (subscriptions) and one-off calls. */
  preferred(): Replica {
    return this.replicas.find((r) => !r.ejected) ?? this.replicas[0]!;
  }

  succeeded(replica: Replica): void {
    replica.failures = 0;
    if (replica.ejected) this.readmit(replica);
  }

  failed(replica: Replica): void {
    replica.failures++;
    // A subgraph with one URL has nothing to fail over to: ejecting it would change nothing.
    if (replica.ejected || replica.failures < this.options.ejectAfter || this.replicas.length === 1) return;
    replica.ejected = true;
    this.options.onChange?.(replica);
    this.scheduleProbe(replica);
  }

  private readmit(replica: Replica): void {
    replica.ejected = false;
    replica.failures = 0;
    const timer = this.probes.get(replica);
    if (timer) clearTimeout(timer);
    this.probes.delete(replica);
    this.options.onChange?.(replica);
  }

  private scheduleProbe(replica: Replica): void {
    if (this.closed) return;
    const timer = setTimeout(async () => {
      this.probes.delete(replica);
      if (!replica.ejected || this.closed) return;
      if (await this.options.probe(replica)) {
        if (replica.ejected && !this.closed) this.readmit(replica);
      } else this.scheduleProbe(replica);
    }, this.options.probeMs);
    // Probes never keep the process alive on their own.
    timer.unref();
    this.probes.set(replica, timer);
  }

  states(): ReplicaState[] {
    return this.replicas.map((r) => ({ url: r.url, healthy: !r.ejected, pending: r.pending }));
  }

  close(): void {
    this.closed = true;
    for (const timer of this.probes.values()) clearTimeout(timer);
    this.probes.clear();
  }
}
