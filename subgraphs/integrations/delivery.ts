// The sender of the durable queue: takes due deliveries from the store (held under a lease),
// signs each per Standard Webhooks with every secret that signs now (the current one and those
// in their rotation overlap), posts it, and records the attempt: SUCCEEDED, PENDING again at the
// next step of the retry schedule (Retry-After honoured), or DEAD. A process that dies mid-flight
// leaves its deliveries PENDING; they are sent again once their lease passed (at least once).
import { Webhook } from 'standardwebhooks';
import type { Logger } from '../../runtime/logger.ts';
import { createPeriodicJob, type PeriodicJob } from '../../runtime/periodic-job.ts';
import { nextAttemptDelay, parseRetryAfter } from './domain.ts';
import type { SafeSender } from './sender.ts';
import type { IntegrationsStore, WebhookDeliveryRow } from './store.ts';

export interface DeliveryWorkerOptions {
  store: IntegrationsStore;
  sender: SafeSender;
  logger: Logger;
  retryScheduleMs: readonly number[];
  /** An endpoint failing this long when one of its deliveries goes DEAD is disabled. */
  disableAfterMs: number;
  /** Deliveries in flight at once. */
  concurrency: number;
  /** How long a claimed delivery is held (longer than a send takes). */
  leaseMs: number;
  /** How often the queue is looked at when nothing woke the worker. */
  pollMs: number;
  /** Told of every recorded attempt (metrics, tests). */
  onAttempt?: (delivery: WebhookDeliveryRow, latencyMs: number) => void;
}

/** Standard Webhooks headers for one message, signed with each secret ("v1,<sig> v1,<sig>"). */
export function signatureHeaders(secrets: readonly string[], messageId: string, at: Date, body: string): Record<string, string> {
  const signatures = secrets.map((s) => new Webhook(s).sign(messageId, at, body));
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}

/** Per endpoint: the earliest time its next delivery may go (its rate limit). */
class RateGate {
  private readonly next = new Map<string, number>();

  /** 0 when it may go now (and takes the slot), else the time it may. */
  take(endpointId: string, perSecond: number | null, now: number): number {
    if (perSecond === null) return 0;
    const at = this.next.get(endpointId) ?? 0;
    if (at > now) return at;
    // Evenly spaced, no burst: one delivery every 1/perSecond seconds.
    this.next.set(endpointId, Math.max(at, now) + 1000 / perSecond);
    return 0;
  }
}

export class DeliveryWorker {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly gate = new RateGate();
  private stopped = true;
  private readonly secretCache = new Map<string, { at: number; secrets: string[] }>();

  // Polls every pollMs, and at once when kicked (something was queued).
  private readonly job: PeriodicJob;

  constructor(private readonly o: DeliveryWorkerOptions) {
    this.job = createPeriodicJob({ name: 'webhook deliveries', intervalMs: o.pollMs, run: () => this.pump(), logger: o.logger, runAtStart: true });
  }

  start(): void {
    this.stopped = false;
    this.job.start();
  }

  /** Something was queued: look now. */
  kick(): void {
    this.job.kick();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const room = this.o.concurrency - this.inFlight.size;
        if (room <= 0 || this.stopped) {
          if (this.inFlight.size > 0) await Promise.race(this.inFlight);
          if (this.stopped) return;
          continue;
        }
        const due = await this.o.store.claimDue(Math.min(room, 200), this.o.leaseMs);
        if (due.length === 0) return;
        for (const d of due) {
          const p = this.deliver(d).catch((err: unknown) =>
            this.o.logger.error({ err, deliveryId: d.id }, 'delivery failed unexpectedly; it is tried again after its lease'),
          );
          this.inFlight.add(p);
          void p.finally(() => this.inFlight.delete(p));
        }
      }
    } catch (err) {
      this.o.logger.error({ err }, 'taking due webhook deliveries failed; trying again shortly');
    }
  }

  private async secrets(endpointId: string): Promise<string[]> {
    const cached = this.secretCache.get(endpointId);
    const now = Date.now();
    // A rotation reaches the sender within a second.
    if (cached && now - cached.at < 1000) return cached.secrets;
    const secrets = await this.o.store.signingSecrets(endpointId);
    this.secretCache.set(endpointId, { at: now, secrets });
    return secrets;
  }

  private async deliver(d: WebhookDeliveryRow & { url: string; rateLimitPerSecond: number | null }): Promise<void> {
    const now = this.o.store.now();
    const wait = this.gate.take(d.endpointId, d.rateLimitPerSecond, now);
    if (wait > 0) {
      await this.o.store.postpone(d.id, wait);
      // Looked at again when it is due, not at the next poll.
      setTimeout(() => this.kick(), Math.max(0, wait - this.o.store.now())).unref?.();
      return;
    }
    const secrets = await this.secrets(d.endpointId);
    const headers = signatureHeaders(secrets, d.messageId, new Date(now), d.body);
    const result = await this.o.sender.post(d.url, headers, d.body);
    const attempts = d.attemptCount + 1;
    const ok = result.error === null;
    const retryInMs = ok ? null : (nextAttemptDelay(this.o.retryScheduleMs, attempts, parseRetryAfter(result.retryAfter, this.o.store.now())) ?? 'dead');
    const recorded = await this.o.store.recordAttempt(
      d,
      { statusCode: result.statusCode, latencyMs: result.latencyMs, error: result.error, responseExcerpt: result.responseExcerpt, retryInMs },
      this.o.disableAfterMs,
    );
    this.o.onAttempt?.(recorded, result.latencyMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.job.stop();
    await Promise.allSettled([...this.inFlight]);
  }
}
