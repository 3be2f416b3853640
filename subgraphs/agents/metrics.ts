// The agents subgraph's own series: agents by status and health, read at scrape time. Health is
// derived from the last heartbeat against each agent's interval (domain.deriveHealth), so it is
// counted per distinct interval with the same cut-offs, in the database, without reading rows.
import { sql } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { callbackGauge, type Registry } from '../../runtime/metrics.ts';
import { HEALTHY_INTERVALS, STALE_INTERVALS } from './domain.ts';
import type { AgentsDB } from './store.ts';

export function registerAgentMetrics(registry: Registry, database: Database<AgentsDB>, clock: () => number): void {
  callbackGauge(
    registry,
    { name: 'platform_agents', help: 'Agents of all tenants by status and health (HEALTHY, STALE, OFFLINE)', labelNames: ['status', 'health'] as const },
    async (set) => {
      const intervals = await sql<{ seconds: number | string }>`select distinct heartbeat_interval_seconds as seconds from agents`.execute(database.db);
      const now = clock();
      const totals = new Map<string, { HEALTHY: number; STALE: number; OFFLINE: number }>();
      for (const { seconds } of intervals.rows) {
        const healthy = new Date(now - HEALTHY_INTERVALS * Number(seconds) * 1000).toISOString();
        const stale = new Date(now - STALE_INTERVALS * Number(seconds) * 1000).toISOString();
        const rows = await sql<{ status: string; healthy: number | string; stale: number | string; total: number | string }>`
          select status,
            sum(case when last_heartbeat_at >= ${healthy} then 1 else 0 end) as healthy,
            sum(case when last_heartbeat_at >= ${stale} and last_heartbeat_at < ${healthy} then 1 else 0 end) as stale,
            count(*) as total
          from agents where heartbeat_interval_seconds = ${Number(seconds)} group by status`.execute(database.db);
        for (const row of rows.rows) {
          const sum = totals.get(row.status) ?? { HEALTHY: 0, STALE: 0, OFFLINE: 0 };
          const h = Number(row.healthy);
          const s = Number(row.stale);
          sum.HEALTHY += h;
          sum.STALE += s;
          sum.OFFLINE += Number(row.total) - h - s;
          totals.set(row.status, sum);
        }
      }
      for (const [status, byHealth] of totals) {
        for (const [health, value] of Object.entries(byHealth)) set({ status, health }, value);
      }
    },
  );
}
