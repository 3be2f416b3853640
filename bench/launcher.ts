// Starts each benchmarked service as its own Node process, the way an operator runs it. Output
// goes to a log file rather than a pipe: a pipe the busy load generator drains late would block a
// service that logs every request, and the benchmark would measure the pipe.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

export { getFreePort as freePort } from '../scripts/free-port.ts';

export interface LaunchOptions {
  name: string;
  /** Script and arguments relative to the repo root. */
  args: string[];
  env: Record<string, string>;
  port: number;
  /** Node flags before the script (e.g. --inspect). */
  nodeArgs?: string[];
  /** The working directory (default: this repository): another checkout for --compare. */
  cwd?: string;
  /** False runs a plain JavaScript file without the TypeScript loader. */
  tsx?: boolean;
  logDir: string;
  /** Answers 200 once the service can serve. */
  ready: (baseUrl: string) => Promise<boolean>;
  readyTimeoutMs?: number;
}

export interface Service {
  name: string;
  pid: number;
  port: number;
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  logFile: string;
  /** SIGTERM, then SIGKILL after timeoutMs. */
  stop(timeoutMs?: number): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const children = new Set<ChildProcess>();

// Never leave a service behind when the benchmark dies half-way.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export async function launch(options: LaunchOptions): Promise<Service> {
  const logFile = join(options.logDir, `${options.name}.log`);
  const fd = openSync(logFile, 'a');
  const loader = options.tsx === false ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, ...options.args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  children.add(child);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      children.delete(child);
      resolve();
    });
  });
  const baseUrl = `http://127.0.0.1:${options.port}`;
  const tail = () => readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`${options.name} exited (${exited.signal ?? `code ${exited.code}`}) before it was ready:\n${tail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.name} was not ready at ${baseUrl} in time:\n${tail()}`);
    }
    try {
      if (await options.ready(baseUrl)) break;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  if (child.pid === undefined) throw new Error(`${options.name} has no pid`);

  return {
    name: options.name,
    pid: child.pid,
    port: options.port,
    baseUrl,
    logFile,
    async stop(timeoutMs = 15_000) {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Ready when GET /readyz answers 200 (our subgraphs and gateway). */
export async function readyz(baseUrl: string): Promise<boolean> {
  const res = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return res.status === 200;
}

/** Ready when a trivial GraphQL query succeeds (stock Apollo Server has no readiness route). */
export async function answersGraphQL(baseUrl: string): Promise<boolean> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
    signal: AbortSignal.timeout(2_000),
  });
  await res.body?.cancel();
  return res.status === 200;
}
