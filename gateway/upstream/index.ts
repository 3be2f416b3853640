import type { Logger } from '../../runtime/logger.ts';
import { Deadline, DeadlineExceededError } from './deadline.ts';
import { type BreakerState, isOutage, type PolicyOptions, type SubgraphPolicies, subgraphPolicies } from './policy.ts';
import { type Balancing, type Replica, ReplicaSet, type ReplicaState } from './replicas.ts';

export { Deadline, DeadlineExceededError } from './deadline.ts';
export { isOutage, type BreakerState } from './policy.ts';
export type { Balancing, Replica, ReplicaState } from './replicas.ts';

export interface UpstreamOptions extends PolicyOptions {
  name: string;
  urls: readonly string[];
  balancing: Balancing;
  ejectAfter: number;
  probeMs: number;
  /** Resolves true when an ejected replica answers again; never rejects. */
  probe: (replica: Replica) => Promise<boolean>;
  logger?: Logger | undefined;
}

/** What /readyz and metrics show of one subgraph. A snapshot: changing it changes nothing. */
export interface SubgraphState {
  breaker: BreakerState;
  /** Fetches that may start now without waiting for a bulkhead slot. */
  freeSlots: number;
  replicas: ReplicaState[];
}

/**
 * The way to one subgraph: its replicas and its policies. The data source hands it one attempt
 * (send to this replica, give up on this signal); it decides which replica, how often and when
 * not at all.
 */
export class Upstream {
  readonly name: string;
  readonly timeoutMs: number;
  readonly replicas: ReplicaSet;
  private readonly policies: SubgraphPolicies;

  constructor(options: UpstreamOptions) {
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
    const logger = options.logger;
    this.replicas = new ReplicaSet({
      urls: options.urls,
      balancing: options.balancing,
      ejectAfter: options.ejectAfter,
      probeMs: options.probeMs,
      probe: options.probe,
      onChange: (replica) =>
        replica.ejected
          ? logger?.warn({ subgraph: this.name, url: replica.url, failures: replica.failures }, 'subgraph replica ejected')
          : logger?.info({ subgraph: this.name, url: replica.url }, 'subgraph replica answers again'),
    });
    this.policies = subgraphPolicies(options);
    this.policies.onBreakerChange((state) => {
      if (state === 'closed') logger?.info({ subgraph: this.name, breaker: state }, 'subgraph circuit breaker closed');
      else logger?.warn({ subgraph: this.name, breaker: state }, `subgraph circuit breaker ${state}`);
    });
  }

  /**
   * Runs a fetch: `attempt` sends to the replica it is given and gives up when the deadline tells
   * it to. A query (`retry` true) may run several attempts, each on a replica this fetch did not
   * try yet when there is one; a mutation runs at most one. Rejects with DeadlineExceededError
   * when the fetch's timeout passes, whatever the attempt in flight does.
   */
  execute<T>(retry: boolean, attempt: (replica: Replica, deadline: Deadline) => Promise<T>): Promise<T> {
    const replicas = this.replicas;
    const policy = retry ? this.policies.query : this.policies.mutation;
    const timeoutMs = this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      let tried: Set<Replica> | undefined;
      const deadline = new Deadline(timeoutMs, () => reject(new DeadlineExceededError(timeoutMs)));
      policy
        .execute(async () => {
          if (deadline.expired) throw new DeadlineExceededError(timeoutMs);
          const replica = replicas.pick(tried);
          if (retry && replicas.replicas.length > 1) (tried ??= new Set()).add(replica);
          replica.pending++;
          try {
            const result = await attempt(replica, deadline);
            replicas.succeeded(replica);
            return result;
          } catch (err) {
            if (isOutage(err)) replicas.failed(replica);
            // An answer that is no outage (too large, HTTP 500) still shows the replica is up.
            else replicas.succeeded(replica);
            throw err;
          } finally {
            replica.pending--;
          }
        })
        .then(
          (value) => {
            deadline.clear();
            resolve(value);
          },
          (err: unknown) => {
            deadline.clear();
            reject(err);
          },
        );
    });
  }

  /** The URL for a long-lived connection or a one-off call: the first healthy replica. */
  preferredUrl(): string {
    return this.replicas.preferred().url;
  }

  state(): SubgraphState {
    return { breaker: this.policies.breaker(), freeSlots: this.policies.freeSlots(), replicas: this.replicas.states() };
  }

  close(): void {
    this.replicas.close();
  }
}

/** One line per subgraph for /readyz: the gateway stays ready (it serves partial data) whatever these say. */
export function describeState(state: SubgraphState): string {
  const healthy = state.replicas.filter((r) => r.healthy).length;
  const replicas = `${healthy}/${state.replicas.length} replicas healthy`;
  if (state.breaker === 'open') return `down: circuit breaker open, ${replicas}`;
  if (state.breaker === 'half-open') return `recovering: circuit breaker half-open, ${replicas}`;
  return healthy === state.replicas.length ? `up: ${replicas}` : `degraded: ${replicas}`;
}

/** The gateway's upstreams by subgraph name: buildService defines them, readiness and metrics read them. */
export class Upstreams {
  private readonly byName = new Map<string, Upstream>();

  /** Defines (or, on a supergraph reload that moved it, replaces) a subgraph's upstream. */
  define(options: UpstreamOptions): Upstream {
    this.byName.get(options.name)?.close();
    const upstream = new Upstream(options);
    this.byName.set(options.name, upstream);
    return upstream;
  }

  get(name: string): Upstream | undefined {
    return this.byName.get(name);
  }

  /** Read-only view for /readyz and metrics: per subgraph, breaker state and replicas. */
  states(): Record<string, SubgraphState> {
    const states: Record<string, SubgraphState> = {};
    for (const [name, upstream] of this.byName) states[name] = upstream.state();
    return states;
  }

  close(): void {
    for (const upstream of this.byName.values()) upstream.close();
  }
}
