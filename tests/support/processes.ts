// End-to-end tests start the services as real processes, the way an operator does
// (`node --import tsx scripts/subgraph.ts agents`, `... gateway/main.ts`), on free ports, and talk
// to them over HTTP. Output is captured and shown when a test fails or a start times out; every
// process started here is tracked so afterAll can stop it even when a test failed half-way.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { defaultAuthorization, TEST_SECURITY_ENV } from './auth.ts';
import { dropSchema } from './databases.ts';
import { getFreePort } from '../../scripts/free-port.ts';

/** How long a started process may take to answer /readyz: TEST_READY_TIMEOUT_MS on a crowded machine. */
const READY_TIMEOUT_MS = Number(process.env.TEST_READY_TIMEOUT_MS ?? 45_000);

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export { getFreePort };

export interface ProcessOptions {
  /** Shown in front of every captured line. */
  name: string;
  /** Script and arguments, relative to the repo root, e.g. ['scripts/subgraph.ts', 'agents']. */
  args: string[];
  /** Added to the test runner's environment. */
  env?: Record<string, string | undefined>;
  /** The port the process listens on (passed to it through env by the caller). */
  port: number;
  /** Polled until it answers 200; defaults to http://127.0.0.1:<port>/readyz. */
  readyUrl?: string;
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  name: string;
  /** The GraphQL endpoint, http://127.0.0.1:<port>/graphql. */
  url: string;
  port: number;
  pid(): number | undefined;
  /** Sends a signal (SIGSTOP/SIGCONT to freeze and thaw, SIGTERM to stop gracefully...). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the current process has exited. */
  exited(): Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL if it has not exited within timeoutMs. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
  /** Stops it and starts it again with the same arguments and environment; waits until ready. */
  restart(): Promise<void>;
  /** Everything it wrote to stdout and stderr, across restarts. */
  logs(): string;
  /** The lines of its output that are JSON (the pino logs). */
  jsonLogs(): Record<string, unknown>[];
}

const running = new Set<ChildProcess>();
const handles = new Set<ServiceProcess>();

// Never leave a service behind, whatever happens to the test runner.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startProcess(options: ProcessOptions): Promise<ServiceProcess> {
  const readyUrl = options.readyUrl ?? `http://127.0.0.1:${options.port}/readyz`;
  const lines: string[] = [];
  let child: ChildProcess;
  let exit: Promise<ExitStatus>;
  let exitStatus: ExitStatus | undefined;

  function capture(stream: NodeJS.ReadableStream, label: string): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) lines.push(`[${options.name} ${label}] ${line}`);
    });
    stream.on('end', () => {
      if (partial) lines.push(`[${options.name} ${label}] ${partial}`);
    });
  }

  function spawnChild(): void {
    exitStatus = undefined;
    // Real services run outside tests: development mode unless the caller says otherwise.
    const env = { ...process.env, NODE_ENV: 'development', ...options.env };
    child = spawn(process.execPath, ['--import', 'tsx', ...options.args], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    capture(child.stdout!, 'out');
    capture(child.stderr!, 'err');
    const current = child;
    exit = new Promise((resolve) => {
      current.once('exit', (code, signal) => {
        running.delete(current);
        exitStatus = { code, signal };
        lines.push(`[${options.name}] exited with ${signal ?? `code ${code}`}`);
        resolve(exitStatus);
      });
    });
  }

  async function waitReady(): Promise<void> {
    const deadline = Date.now() + (options.readyTimeoutMs ?? READY_TIMEOUT_MS);
    while (Date.now() < deadline) {
      if (exitStatus) throw new Error(`${options.name} exited before it was ready:\n${lines.join('\n')}`);
      try {
        const res = await fetch(readyUrl, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    child.kill('SIGKILL');
    throw new Error(`${options.name} was not ready at ${readyUrl} in time:\n${lines.join('\n')}`);
  }

  async function stop(timeoutMs = 15_000): Promise<ExitStatus> {
    if (exitStatus) return exitStatus;
    child.kill('SIGCONT'); // a frozen process cannot handle SIGTERM
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const status = await exit;
    clearTimeout(timer);
    return status;
  }

  spawnChild();
  const handle: ServiceProcess = {
    name: options.name,
    url: `http://127.0.0.1:${options.port}/graphql`,
    port: options.port,
    pid: () => child.pid,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    exited: () => exit,
    stop,
    async restart() {
      await stop();
      spawnChild();
      await waitReady();
    },
    logs: () => lines.join('\n'),
    jsonLogs() {
      const out: Record<string, unknown>[] = [];
      for (const line of lines) {
        const json = line.slice(line.indexOf('] ') + 2);
        if (!json.startsWith('{')) continue;
        try {
          out.push(JSON.parse(json) as Record<string, unknown>);
        } catch {
          // A line that only looks like JSON.
        }
      }
      return out;
    },
  };
  handles.add(handle);
  await waitReady();
  return handle;
}

/** Runs a command that is expected to exit by itself (e.g. on bad configuration). */
export async function runToExit(options: {
  args: string[];
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}): Promise<ExitStatus & { output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...options.args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'development', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const status = await new Promise<ExitStatus>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  clearTimeout(timer);
  running.delete(child);
  return { ...status, output };
}

/** Stops every process started by this module. */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...handles].map((h) => h.stop().catch(() => undefined)));
  handles.clear();
}

/**
 * Registers the suite hooks every e2e file wants: print the services' output when a test fails,
 * and stop everything after the file, pass or fail.
 */
export function manageProcesses(): void {
  beforeEach((context) => {
    context.onTestFailed(() => {
      for (const h of handles) console.error(`---- ${h.name} output ----\n${h.logs()}`);
    });
  });
  afterAll(stopAllProcesses);
}

/** The subgraphs every platform starts; others (integrations, collaboration...) are asked for with `with`. */
export const CORE_SUBGRAPHS = ['governance', 'agents', 'orchestration', 'memory'] as const;
type CoreSubgraph = (typeof CORE_SUBGRAPHS)[number];

export type Platform = { [name in CoreSubgraph]: ServiceProcess } & {
  /** Every subgraph this platform started, by name (the core ones and those asked for with `with`). */
  subgraphs: Record<string, ServiceProcess>;
  gateway: ServiceProcess;
  /** The gateway's GraphQL endpoint. */
  url: string;
  stop(): Promise<void>;
};

/** Budgets no functional test reaches (the rate limit itself is tested with small ones). */
export const TEST_RATE_LIMITS = { RATE_LIMIT_HTTP_REQUESTS: '1000000', RATE_LIMIT_SUBSCRIPTIONS: '1000000' } as const;

export interface PlatformOptions {
  /** Where the subgraphs keep their SQLite files. */
  dataDir: string;
  /** Subgraphs to start beside the core ones (names from subgraphs/index.ts). */
  with?: string[];
  /** For every process. */
  env?: Record<string, string | undefined>;
  /** For the gateway only (SUPERGRAPH_PATH, SUBGRAPH_TIMEOUT_MS...). */
  gatewayEnv?: Record<string, string | undefined>;
  /** Ports to use instead of free ones (e.g. one a TcpTap already forwards to), by subgraph name or `gateway`. */
  ports?: Record<string, number | undefined>;
  /** Where the gateway reaches a subgraph instead of its own port (e.g. through a TcpTap). */
  subgraphUrls?: Record<string, string | undefined>;
}

const portVariable = (name: string) => `${name.toUpperCase()}_PORT`;
const urlVariable = (name: string) => `SUBGRAPH_${name.toUpperCase()}_URL`;

/**
 * The core subgraphs (and any asked for with `with`) and the gateway, each its own process on a
 * free port, sharing one identity-signing secret (TEST_SIGNING_SECRET). Every subgraph is told
 * where the others listen, as `npm start` does (agents asks governance for credentials,
 * orchestration asks agents about claimers...).
 * On PostgreSQL (DATABASE_URL set) the platform gets its own schemas, dropped by stop(); with
 * REDIS_URL set, its own event channels.
 */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const names = [...CORE_SUBGRAPHS, ...(options.with ?? []).filter((n) => !(CORE_SUBGRAPHS as readonly string[]).includes(n))];
  const ports: Record<string, number> = {};
  for (const name of [...names, 'gateway']) ports[name] = options.ports?.[name] ?? (await getFreePort());
  const isolation = `e2e${randomBytes(4).toString('hex')}_`;
  const common = {
    DATA_DIR: options.dataDir,
    DATABASE_SCHEMA_PREFIX: isolation,
    EVENT_CHANNEL_PREFIX: isolation,
    LOG_LEVEL: 'info',
    ...TEST_SECURITY_ENV,
    ...options.env,
  };
  const peers = Object.fromEntries(names.map((n) => [urlVariable(n), `http://127.0.0.1:${ports[n]}/graphql`]));
  const started = await Promise.all(
    names.map((name) =>
      startProcess({
        name,
        args: ['scripts/subgraph.ts', name],
        port: ports[name]!,
        env: { ...peers, ...common, [portVariable(name)]: String(ports[name]) },
      }),
    ),
  );
  const subgraphs = Object.fromEntries(names.map((n, i) => [n, started[i]!]));
  const gateway = await startGatewayProcess({
    name: 'gateway',
    port: ports.gateway,
    subgraphs: Object.fromEntries(names.map((n) => [n, options.subgraphUrls?.[n] ?? subgraphs[n]!.url])),
    env: { ...common, ...options.gatewayEnv },
  });
  return {
    governance: subgraphs.governance!,
    agents: subgraphs.agents!,
    orchestration: subgraphs.orchestration!,
    memory: subgraphs.memory!,
    subgraphs,
    gateway,
    url: gateway.url,
    async stop() {
      await gateway.stop();
      await Promise.all(started.map((p) => p.stop()));
      const databaseUrl = options.env?.DATABASE_URL ?? process.env.DATABASE_URL;
      if (databaseUrl) for (const name of names) await dropSchema(`${isolation}${name}`);
    },
  };
}

/** Every subgraph of the supergraph (supergraph.yaml), started or not. */
export const supergraphSubgraphs = Object.keys(
  (parseYaml(readFileSync(new URL('../../supergraph.yaml', import.meta.url), 'utf8')) as { subgraphs: Record<string, unknown> }).subgraphs,
);

/** Where the gateway reaches a subgraph no test started: a closed port, never a developer's `npm start`. */
const NOT_STARTED = 'http://127.0.0.1:9/graphql';

/**
 * A gateway process (gateway/main.ts) in front of the given subgraph URLs, on a free port unless
 * one is given: the platform's own, or an extra one with other settings beside it. The test
 * signing secret and budgets no functional test reaches come first, so `env` can change them.
 * A subgraph of the supergraph not given here is unreachable (its fields answer errors).
 */
export async function startGatewayProcess(options: {
  name: string;
  subgraphs: Record<string, string>;
  env?: Record<string, string | undefined>;
  port?: number;
}): Promise<ServiceProcess> {
  const port = options.port ?? (await getFreePort());
  const urls = Object.fromEntries(supergraphSubgraphs.map((n) => [urlVariable(n), options.subgraphs[n] ?? NOT_STARTED]));
  return startProcess({
    name: options.name,
    args: ['gateway/main.ts'],
    port,
    env: {
      LOG_LEVEL: 'info',
      ...TEST_SECURITY_ENV,
      // Suites make thousands of requests as one caller; the rate limit tests set their own.
      ...TEST_RATE_LIMITS,
      ...options.env,
      GATEWAY_PORT: String(port),
      ...urls,
    },
  });
}

/** The subgraph URLs of a platform, for another gateway in front of them. */
export function subgraphsOf(platform: Platform): Record<string, string> {
  return Object.fromEntries(Object.entries(platform.subgraphs).map(([n, p]) => [n, p.url]));
}

export interface GqlResult<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  data: T | null | undefined;
  errors: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[] | undefined;
}

/**
 * Headers for a request as the test's default caller: the admin of the default tenant, unless the
 * caller set authorization or x-api-key itself. A header given as '' is left out (`{ authorization:
 * '' }` sends no credentials at all).
 */
export async function withDefaultAuth(headers: Record<string, string> = {}): Promise<Record<string, string>> {
  const names = Object.keys(headers).map((h) => h.toLowerCase());
  const out: Record<string, string> = names.includes('authorization') || names.includes('x-api-key') ? {} : { authorization: await defaultAuthorization() };
  for (const [name, value] of Object.entries(headers)) if (value !== '') out[name] = value;
  return out;
}

export async function gql<T = Record<string, unknown>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResult<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...(await withDefaultAuth(headers)) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  let body: { data?: T | null; errors?: GqlResult<T>['errors'] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`${url} answered ${res.status} with a body that is not JSON: ${text.slice(0, 500)}`);
  }
  return { status: res.status, headers: res.headers, data: body.data, errors: body.errors };
}

/** Like gql, but fails with the errors unless the operation succeeded completely. */
export async function gqlOk<T = Record<string, unknown>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers?: Record<string, string>,
): Promise<T> {
  const result = await gql<T>(url, query, variables, headers);
  if (result.status !== 200 || result.errors || !result.data) {
    throw new Error(`operation failed (HTTP ${result.status}): ${JSON.stringify(result.errors ?? result.data)}\n${query}`);
  }
  return result.data;
}

export interface TcpTap {
  /** http://127.0.0.1:<tap port>/graphql, forwarding to the target port. */
  url: string;
  port: number;
  /** TCP connections accepted so far. */
  connections(): number;
  /** Everything clients sent through the tap, as text (HTTP request heads and bodies). */
  received(): string;
  /** The headers of each HTTP request sent through the tap, names lower-cased. */
  requestHeaders(): Record<string, string>[];
  close(): Promise<void>;
}

/**
 * A plain TCP relay in front of a service: it forwards bytes unchanged and records what it saw,
 * so a test can count the connections a client really opened and read the headers it really sent.
 */
export async function startTcpTap(targetPort: number, path = '/graphql'): Promise<TcpTap> {
  // Bytes are kept per connection: requests on concurrent connections must not interleave.
  const streams: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const chunks: Buffer[] = [];
    streams.push(chunks);
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    connections: () => streams.length,
    received: () => streams.map((chunks) => Buffer.concat(chunks).toString('utf8')).join('\n'),
    requestHeaders() {
      const all: Record<string, string>[] = [];
      for (const chunks of streams) {
        const bytes = Buffer.concat(chunks);
        let offset = 0;
        while (offset < bytes.length) {
          const end = bytes.indexOf('\r\n\r\n', offset);
          if (end < 0) break;
          const headers: Record<string, string> = {};
          for (const line of bytes.subarray(offset, end).toString('utf8').split('\r\n').slice(1)) {
            const colon = line.indexOf(':');
            if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
          }
          all.push(headers);
          offset = end + 4 + Number(headers['content-length'] ?? 0);
        }
      }
      return all;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
