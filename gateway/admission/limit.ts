/**
 * How many requests may be in flight at once. `fixed` never moves; `gradient` follows measured
 * latency the way Netflix's concurrency-limits Gradient2 does: it keeps a slow average of the
 * latency (what the service does when it is not queueing) and a fast one (what it does now); when
 * the fast one rises above the slow one times a tolerance, requests are queueing somewhere
 * downstream (subgraphs, the event loop), and the limit shrinks in proportion; when they agree, it
 * grows by about its square root per sample. Nothing here reads a clock: callers pass durations.
 */
export interface ConcurrencyLimit {
  /** The current limit, a whole number >= 1. */
  readonly current: number;
  /** One finished request: how long it took, and how many were in flight when it started. */
  sample(durationMs: number, inFlight: number): void;
}

export function fixedLimit(limit: number): ConcurrencyLimit {
  return { current: limit, sample() {} };
}

export interface GradientOptions {
  initial: number;
  min: number;
  max: number;
  /** How much slower than the long-run latency the current one may be before the limit shrinks. */
  tolerance?: number;
  /** Samples the long-run average spans. */
  longWindow?: number;
  /** Samples the current average spans. */
  shortWindow?: number;
  /** How far each sample moves the limit toward the new estimate (0-1). */
  smoothing?: number;
}

class Ewma {
  private value: number | undefined;
  private count = 0;
  constructor(private readonly window: number) {}
  add(sample: number): number {
    // The first `window` samples average plainly, so the start is not dominated by one outlier.
    this.count = Math.min(this.count + 1, this.window);
    this.value = this.value === undefined ? sample : this.value + (sample - this.value) / this.count;
    return this.value;
  }
  get(): number | undefined {
    return this.value;
  }
  scale(factor: number): void {
    if (this.value !== undefined) this.value *= factor;
  }
}

export function gradientLimit(options: GradientOptions): ConcurrencyLimit {
  const tolerance = options.tolerance ?? 1.5;
  const smoothing = options.smoothing ?? 0.2;
  const longRtt = new Ewma(options.longWindow ?? 600);
  const shortRtt = new Ewma(options.shortWindow ?? 10);
  let estimate = clamp(options.initial, options.min, options.max);
  let current = Math.round(estimate);
  function clamp(value: number, min: number, max: number): number {
    return Math.max(min, Math.min(max, value));
  }
  return {
    get current() {
      return current;
    },
    sample(durationMs, inFlight) {
      const short = shortRtt.add(durationMs);
      const long = longRtt.add(durationMs);
      // A long-run average far above the current one is stale (a slow period has passed): let it
      // catch up faster than its window, or the limit would stay high while latency is low anyway.
      if (long / short > 2) longRtt.scale(0.95);
      // Requests that did not fill the limit say nothing about whether a higher one would queue.
      if (inFlight < estimate / 2) return;
      const gradient = clamp((tolerance * (longRtt.get() ?? long)) / short, 0.5, 1);
      const next = estimate * gradient + Math.sqrt(estimate);
      estimate = clamp(estimate * (1 - smoothing) + next * smoothing, options.min, options.max);
      current = Math.max(1, Math.round(estimate));
    },
  };
}
