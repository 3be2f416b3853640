import {
  BrokenCircuitError,
  BulkheadRejectedError,
  bulkhead,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type IPolicy,
  type CircuitBreakerPolicy,
  type BulkheadPolicy,
  retry,
  wrap,
} from 'cockatiel';
import { DeadlineExceededError } from './deadline.ts';

export interface PolicyOptions {
  /** Deadline of one fetch, its waiting for a bulkhead slot and all its attempts included (gateway/upstream/deadline.ts). */
  timeoutMs: number;
  /** Extra attempts of a query; mutations get none. */
  retries: number;
  retryDelayMs: number;
  /** Consecutive failed fetches that open the breaker; 0: no breaker. */
  breakerFailures: number;
  breakerHalfOpenMs: number;
  maxConcurrency: number;
  maxQueued: number;
  /** Called before each retry of a query (metrics count them). */
  onRetry?: (() => void) | undefined;
}

/**
 * Whether a failure says the subgraph (or a replica of it) cannot serve: refused, reset, timed
 * out, or an HTTP status a proxy or an overloaded server answers with. An error marks itself with
 * `outage: false` when the subgraph did answer (an answer too large, an HTTP 500 of one query): those
 * neither open the breaker nor eject a replica nor are retried. The gateway's own refusals (open
 * breaker, full bulkhead) are not outages either, or an open breaker would keep itself open.
 */
export function isOutage(err: unknown): boolean {
  if (err instanceof BrokenCircuitError || err instanceof BulkheadRejectedError) return false;
  const flag = typeof err === 'object' && err !== null ? (err as { outage?: unknown }).outage : undefined;
  return typeof flag === 'boolean' ? flag : true;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  // Only by isolate(), which nothing here calls.
  [CircuitState.Isolated]: 'open',
};

export interface SubgraphPolicies {
  /** For queries: breaker, bulkhead, retries with backoff and jitter. */
  query: IPolicy;
  /** For mutations: the same without retries; a mutation is sent at most once. */
  mutation: IPolicy;
  breaker(): BreakerState;
  /** Fetches that may still start now without waiting (bulkhead). */
  freeSlots(): number;
  onBreakerChange(listener: (state: BreakerState) => void): void;
}

/**
 * The cockatiel policies of one subgraph, outermost first: the circuit breaker (an open one
 * fails a fetch before it waits for anything), the bulkhead, and for queries the retries (never
 * after the deadline passed). The fetch's deadline (Upstream.execute) is around all of them, so
 * SUBGRAPH_TIMEOUT_MS covers the wait for a slot, every attempt and the backoff between them. The
 * breaker counts a fetch once, after its retries: it opens when the subgraph fails as a whole,
 * not when one replica does.
 */
export function subgraphPolicies(options: PolicyOptions): SubgraphPolicies {
  const breaker: CircuitBreakerPolicy | undefined =
    options.breakerFailures > 0
      ? circuitBreaker(handleWhen(isOutage), { halfOpenAfter: options.breakerHalfOpenMs, breaker: new ConsecutiveBreaker(options.breakerFailures) })
      : undefined;
  const slots: BulkheadPolicy = bulkhead(options.maxConcurrency, options.maxQueued);
  const retries = retry(
    handleWhen((err) => isOutage(err) && !(err instanceof DeadlineExceededError)),
    {
      maxAttempts: options.retries,
      // Decorrelated jitter (cockatiel's default generator): replicas of the gateway retrying at once do not stay in step.
      backoff: new ExponentialBackoff({ initialDelay: options.retryDelayMs, maxDelay: 1_000 }),
    },
  );
  if (options.onRetry) retries.onRetry(options.onRetry);
  return {
    query: breaker ? (options.retries > 0 ? wrap(breaker, slots, retries) : wrap(breaker, slots)) : options.retries > 0 ? wrap(slots, retries) : slots,
    mutation: breaker ? wrap(breaker, slots) : slots,
    breaker: () => (breaker ? STATE_NAMES[breaker.state] : 'closed'),
    freeSlots: () => slots.executionSlots,
    onBreakerChange(listener) {
      breaker?.onStateChange((state) => listener(STATE_NAMES[state]));
    },
  };
}
