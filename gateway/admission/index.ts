import type { IncomingMessage } from 'node:http';
import type { Admitted, Refused } from '../../runtime/http.ts';
import { callbackCounter, callbackGauge, type ServiceMetrics } from '../../runtime/metrics.ts';
import type { AdmissionConfig } from './config.ts';
import { AdmissionGate, isShed, type ShedReason } from './gate.ts';
import { laneOf } from './lanes.ts';
import { fixedLimit, gradientLimit } from './limit.ts';

export { admissionSpec, loadAdmissionConfig, type AdmissionConfig } from './config.ts';

/**
 * The gateway's admission control: one gate in front of every short request (GraphQL over HTTP,
 * REST), and the same gate's state deciding whether a new long-lived stream (SSE, a graphql-ws
 * connection) is taken. The transports stay unaware of how: runtime/http.ts asks `admit`, the
 * WebSocket and SSE adapters ask `overloaded`.
 */
export interface Admission {
  /** runtime/http.ts' hook; undefined when admission is off. */
  admit: ((req: IncomingMessage, pathname: string) => Admitted | Refused | undefined | Promise<Admitted | Refused | undefined>) | undefined;
  /** True while a new request would have to wait: new subscriptions are refused then. */
  overloaded(): boolean;
  retryAfterSeconds: number;
  close(): void;
}

const MESSAGES: Record<ShedReason, string> = {
  queue_full: 'The gateway is overloaded: try again later',
  queue_timeout: 'The gateway is overloaded (no capacity within the queue deadline): try again later',
  closing: 'The gateway is shutting down: try again (another replica)',
};

export function createAdmission(options: {
  config: AdmissionConfig;
  /** The claim naming an agent in tokens (AUTH_AGENT_CLAIM): agents' requests use the reserved share. */
  agentClaim: string;
  /** Paths never gated: metrics, docs assets... (probes never reach admission). */
  exempt: (pathname: string) => boolean;
  /** Paths of long-lived streams (SSE): refused when overloaded, never holding a slot. */
  streams: (pathname: string) => boolean;
  metrics: ServiceMetrics;
}): Admission {
  const { config } = options;
  const retryAfterSeconds = config.ADMISSION_RETRY_AFTER_SECONDS;
  if (config.ADMISSION === 'off') return { admit: undefined, overloaded: () => false, retryAfterSeconds, close() {} };
  const limit =
    config.ADMISSION === 'fixed'
      ? fixedLimit(config.ADMISSION_LIMIT)
      : gradientLimit({ initial: config.ADMISSION_LIMIT, min: config.ADMISSION_MIN_LIMIT, max: config.ADMISSION_MAX_LIMIT });
  const gate = new AdmissionGate({
    limit,
    maxQueued: config.ADMISSION_QUEUE,
    queueTimeoutMs: config.ADMISSION_QUEUE_TIMEOUT_MS,
    reservedShare: config.ADMISSION_RESERVED_PERCENT / 100,
  });
  registerMetrics(options.metrics, gate);
  const refusal = (reason: ShedReason): Refused => ({ refused: { status: 503, code: 'OVERLOADED', message: MESSAGES[reason], retryAfterSeconds } });
  return {
    admit(req, pathname) {
      if (options.exempt(pathname)) return undefined;
      if (options.streams(pathname)) return gate.overloaded() ? refusal('queue_full') : undefined;
      const outcome = gate.enter(laneOf(req, options.agentClaim));
      if (outcome instanceof Promise) return outcome.then((settled) => (isShed(settled) ? refusal(settled.shed) : settled));
      return isShed(outcome) ? refusal(outcome.shed) : outcome;
    },
    overloaded: () => gate.overloaded(),
    retryAfterSeconds,
    close: () => gate.close(),
  };
}

function registerMetrics(metrics: ServiceMetrics, gate: AdmissionGate): void {
  if (!metrics.enabled) return;
  const { registry } = metrics;
  callbackGauge(registry, { name: 'gateway_admission_limit', help: 'Requests the gateway admits in flight at once now (adaptive: follows latency)' }, (set) =>
    set({}, gate.stats().limit),
  );
  callbackGauge(registry, { name: 'gateway_admission_in_flight', help: 'Admitted requests in flight' }, (set) => set({}, gate.stats().inFlight));
  callbackGauge(registry, { name: 'gateway_admission_queued', help: 'Requests waiting for a slot' }, (set) => set({}, gate.stats().queued));
  callbackCounter(
    registry,
    { name: 'gateway_admission_admitted_total', help: 'Requests admitted, by lane (reserved: operators and agents)', labelNames: ['lane'] as const },
    () => gate.stats().admitted,
    'lane',
  );
  callbackCounter(
    registry,
    { name: 'gateway_admission_shed_total', help: 'Requests refused with 503 OVERLOADED, by reason', labelNames: ['reason'] as const },
    () => gate.stats().shed,
    'reason',
  );
}
