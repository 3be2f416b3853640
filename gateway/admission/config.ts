import { ConfigError, env, loadConfig, type ConfigOf } from '../../runtime/config.ts';

/** The gateway's admission control and connection limits (read from the same environment as gateway/config.ts). */
export const admissionSpec = {
  ADMISSION: env.oneOf(
    'admission control of GraphQL-over-HTTP and REST requests: adaptive (the concurrency limit follows measured latency), fixed (ADMISSION_LIMIT requests in flight), off',
    ['adaptive', 'fixed', 'off'] as const,
    'adaptive',
  ),
  ADMISSION_LIMIT: env.int('requests in flight at once: the fixed limit, or where the adaptive one starts', 128, 1),
  ADMISSION_MIN_LIMIT: env.int('the adaptive limit never goes below this', 32, 1),
  ADMISSION_MAX_LIMIT: env.int('the adaptive limit never goes above this', 1024, 1),
  ADMISSION_QUEUE: env.int('requests that may wait for a slot once the limit is reached; past it they are refused at once (503 OVERLOADED)', 512, 0),
  ADMISSION_QUEUE_TIMEOUT_MS: env.int('longest a request waits for a slot before it is refused (503 OVERLOADED)', 250, 1),
  ADMISSION_RESERVED_PERCENT: env.int(
    'share of the limit (percent) only operators (admin scope) and agents (agent credentials) may use, so they get in when everyone else is refused',
    10,
    0,
  ),
  ADMISSION_RETRY_AFTER_SECONDS: env.int('the Retry-After of a refusal', 1, 0),
  HEALTH_PORT: env.port(
    'serve /healthz and /readyz also on a listener of their own (for probes: it answers under any load, as it shares no queue with API traffic); 0 = the API port only',
    0,
  ),
  MAX_CONNECTIONS: env.int('most open client connections (HTTP keep-alive, WebSocket, SSE) of the API port; more are closed at once; 0 = no cap', 0, 0),
};

export type AdmissionConfig = ConfigOf<typeof admissionSpec>;

export function loadAdmissionConfig(source: Record<string, string | undefined> = process.env): AdmissionConfig {
  const config = loadConfig(admissionSpec, source);
  const problems: string[] = [];
  if (config.ADMISSION_MIN_LIMIT > config.ADMISSION_MAX_LIMIT)
    problems.push(`ADMISSION_MIN_LIMIT (${config.ADMISSION_MIN_LIMIT}) is above ADMISSION_MAX_LIMIT (${config.ADMISSION_MAX_LIMIT})`);
  if (config.ADMISSION_RESERVED_PERCENT > 90) problems.push(`ADMISSION_RESERVED_PERCENT: expected 0-90, got ${config.ADMISSION_RESERVED_PERCENT}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
