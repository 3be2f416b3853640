// The orchestration subgraph's own series: tasks by state (read at scrape time; the tasks_lease
// index starts with state, so the count reads the index only) and lease expiries, counted by what
// the sweeper did with each expired attempt (requeued for a retry, or failed for good).
import { sql } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { callbackGauge, Counter, type Registry } from '../../runtime/metrics.ts';
import type { OrchestrationDB } from './store.ts';

export interface OrchestrationMetrics {
  /** After each sweep: the expired attempts it requeued and failed. */
  swept(result: { requeued: number; failed: number }): void;
}

export function registerOrchestrationMetrics(registry: Registry, database: Database<OrchestrationDB>): OrchestrationMetrics {
  callbackGauge(registry, { name: 'platform_tasks', help: 'Tasks of all tenants by state', labelNames: ['state'] as const }, async (set) => {
    const rows = await sql<{ state: string; total: number | string }>`select state, count(*) as total from tasks group by state`.execute(database.db);
    for (const row of rows.rows) set({ state: row.state }, Number(row.total));
  });
  const expiries = new Counter({
    name: 'orchestration_lease_expiries_total',
    help: 'Task attempts whose lease or deadline expired, by what followed (requeued: retried later; failed: out of attempts)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return {
    swept(result) {
      if (result.requeued > 0) expiries.labels('requeued').inc(result.requeued);
      if (result.failed > 0) expiries.labels('failed').inc(result.failed);
    },
  };
}
