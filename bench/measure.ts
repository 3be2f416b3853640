// One measurement: autocannon against one target for a fixed time, with the CPU each watched
// process spent meanwhile (from /proc, so the load generator's own CPU is not counted).
import autocannon from 'autocannon';
import { cpuMs } from './proc.ts';
import type { HttpCall } from './scenarios.ts';

export interface Watched {
  name: string;
  pid: number;
}

export interface MeasureOptions {
  baseUrl: string;
  call: HttpCall;
  connections: number;
  durationSeconds: number;
  /** Sent with every request (e.g. authorization). */
  headers?: Record<string, string>;
  /** The processes whose CPU is read before and after (the target and the subgraphs). */
  watched: readonly Watched[];
}

export interface Measurement {
  requestsPerSecond: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  completed: number;
  /** Connection errors, timeouts, non-2xx answers and 200s carrying GraphQL errors. */
  failures: { errors: number; timeouts: number; non2xx: number; graphqlErrors: number };
  /** CPU milliseconds each watched process spent per completed request. */
  cpuMsPerRequest: Record<string, number | null>;
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

export async function measure(options: MeasureOptions): Promise<Measurement> {
  const { call } = options;
  const before = options.watched.map((w) => cpuMs(w.pid));
  const ownBefore = process.cpuUsage();
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (call.method === 'POST') headers['content-type'] = 'application/json';
  const nextBody = call.nextBody;
  const result = await autocannon({
    url: `${options.baseUrl}${call.path}`,
    method: call.method,
    headers,
    ...(call.body !== undefined ? { body: call.body } : {}),
    ...(nextBody ? { requests: [{ setupRequest: (request) => ({ ...request, body: nextBody() }) }] } : {}),
    connections: options.connections,
    duration: options.durationSeconds,
    // A GraphQL error comes with status 200: look for it in the body. A plain substring search
    // costs the load generator little, and is the same for every target.
    verifyBody: (body) => typeof body !== 'string' || !body.includes('"errors":'),
  });
  const after = options.watched.map((w) => cpuMs(w.pid));
  const own = process.cpuUsage(ownBefore);
  const completed = result.requests.total;
  const cpuMsPerRequest: Record<string, number | null> = {};
  options.watched.forEach((w, i) => {
    const start = before[i];
    const end = after[i];
    cpuMsPerRequest[w.name] = start == null || end == null || completed === 0 ? null : round((end - start) / completed, 3);
  });
  // The load generator shares the machine: its cost per request shows how much it takes away.
  cpuMsPerRequest['load generator'] = completed === 0 ? null : round((own.user + own.system) / 1000 / completed, 3);
  return {
    requestsPerSecond: round(completed / result.duration, 1),
    p50: result.latency.p50,
    p99: result.latency.p99,
    completed,
    failures: { errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx, graphqlErrors: result.mismatches },
    cpuMsPerRequest,
  };
}
