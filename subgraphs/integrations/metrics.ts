// The integrations subgraph's own series: webhook deliveries by status (read at scrape time), and
// attempts by outcome with their latency, counted as the sender records them.
import { sql } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { callbackGauge, Counter, Histogram, type Registry } from '../../runtime/metrics.ts';
import type { IntegrationsDB } from './store.ts';

export interface IntegrationsMetrics {
  /** One recorded attempt: its outcome (succeeded, retry, dead) and how long it took. */
  attempted(outcome: 'succeeded' | 'retry' | 'dead', latencyMs: number): void;
}

export function registerIntegrationsMetrics(registry: Registry, database: Database<IntegrationsDB>): IntegrationsMetrics {
  callbackGauge(
    registry,
    { name: 'integrations_webhook_deliveries', help: 'Webhook deliveries of all tenants by status', labelNames: ['status'] as const },
    async (set) => {
      const rows = await sql<{ status: string; total: number | string }>`select status, count(*) as total from webhook_deliveries group by status`.execute(
        database.db,
      );
      for (const row of rows.rows) set({ status: row.status }, Number(row.total));
    },
  );
  const attempts = new Counter({
    name: 'integrations_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome (succeeded; retry: failed, tried again later; dead: failed, dead-lettered)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'integrations_webhook_attempt_seconds',
    help: 'Duration of webhook delivery attempts, send to answer',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    attempted(outcome, latencyMs) {
      attempts.labels(outcome).inc();
      latency.observe(latencyMs / 1000);
    },
  };
}
