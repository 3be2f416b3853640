// The service registry's checks, run by the subgraph: a TTL that ran out without a heartbeat
// marks the service DOWN; a PROBE service is fetched (HTTP GET, any 2xx is up) within its timeout.
import type { ServiceStatus } from './domain.ts';
import type { ServiceRow } from './store.ts';

export interface CheckOutcome {
  status: ServiceStatus;
  reason: string | null;
}

export async function checkService(service: ServiceRow): Promise<CheckOutcome> {
  if (service.mode === 'TTL') return { status: 'DOWN', reason: `no heartbeat within ${service.ttlSeconds ?? 60} s` };
  const url = service.probeUrl ?? service.endpoint;
  const timeoutMs = service.probeTimeoutMs ?? 2000;
  try {
    const res = await fetch(url, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { status: 'UP', reason: null };
    return { status: 'DOWN', reason: `probe answered HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') return { status: 'DOWN', reason: `probe timed out after ${timeoutMs} ms` };
    return { status: 'DOWN', reason: `probe failed: ${e.cause?.code ?? e.cause?.message ?? e.message}` };
  }
}

/** Runs `work` over items, at most `limit` at a time. */
export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(lanes);
}
