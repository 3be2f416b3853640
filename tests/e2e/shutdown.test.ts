// How a process stops: one Ctrl+C through npm is one graceful stop (in-flight requests finish), a
// deliberate second one forces the exit, and keep-alive clients under load are told to go
// (Connection: close) rather than reset. Real processes, started as a user starts them.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { subgraphs } from '../../subgraphs/index.ts';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { getFreePort, manageProcesses, REPO_ROOT, startProcess } from '../support/processes.ts';

manageProcesses();

const dataDir = mkdtempSync(join(tmpdir(), 'e2e-shutdown-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface NpmProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<void>;
  alive(): boolean;
}

const groups = new Set<number>();
afterEach(() => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  groups.clear();
});

/** `npm run <args>` in its own process group, as a terminal runs it: Ctrl+C reaches the whole group. */
async function npmRun(args: string[], port: number, env: Record<string, string>, readyTimeoutMs = 60_000): Promise<NpmProcess> {
  const child = spawn('npm', ['run', '--silent', ...args], {
    cwd: REPO_ROOT,
    detached: true,
    env: { ...process.env, NODE_ENV: 'development', LOG_LEVEL: 'debug', DATA_DIR: dataDir, ...TEST_SECURITY_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  groups.add(child.pid!);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let done = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => (done = true));
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (done) throw new Error(`npm run ${args.join(' ')} exited before it was ready:\n${output}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { child, output: () => output, exited, alive: () => !done };
    await sleep(200);
  }
  throw new Error(`npm run ${args.join(' ')} not ready in time:\n${output}`);
}

/** A request whose body has not all arrived: in flight until finish() sends the rest. */
async function requestInFlight(port: number): Promise<{ finish(): Promise<string>; socket: Socket }> {
  const body = JSON.stringify({ query: '{ __typename }' });
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(
    `POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`,
  );
  return {
    socket,
    async finish() {
      socket.write(body.slice(5));
      await Promise.race([closed, sleep(10_000)]);
      return answer;
    },
  };
}

const signalGroup = (child: ChildProcess, signal: NodeJS.Signals) => process.kill(-child.pid!, signal);

describe.each([
  { name: 'a subgraph (npm run subgraph, through tsx)', script: ['subgraph', '--', 'governance'], portVariable: 'GOVERNANCE_PORT' },
  { name: 'the gateway (npm run gateway)', script: ['gateway'], portVariable: 'GATEWAY_PORT' },
])('one Ctrl+C to $name', ({ script, portVariable }) => {
  it('is one graceful stop: the request in flight is answered, then the process exits 0', async () => {
    const port = await getFreePort();
    const proc = await npmRun(script, port, { [portVariable]: String(port), SHUTDOWN_TIMEOUT_MS: '30000' });
    const inFlight = await requestInFlight(port);
    // The terminal sends SIGINT to the group; npm (and tsx) forward it again to their child, a
    // few milliseconds later (more under load): the second copy is simulated here, 50 ms on.
    signalGroup(proc.child, 'SIGINT');
    await sleep(50);
    signalGroup(proc.child, 'SIGINT');
    await sleep(1_500);
    expect(proc.alive(), proc.output()).toBe(true);
    const answer = await inFlight.finish();
    expect(answer).toMatch(/^HTTP\/1\.1 \d{3} /);
    expect(answer.toLowerCase()).toContain('connection: close');
    await proc.exited;
    expect(proc.output()).toContain('shutting down');
    expect(proc.output()).not.toContain('second signal');
    expect(proc.output()).toMatch(/subgraph stopped|gateway stopped/);
  });

  it('a second, deliberate Ctrl+C exits at once, leaving the request in flight', async () => {
    const port = await getFreePort();
    const proc = await npmRun(script, port, { [portVariable]: String(port), SHUTDOWN_TIMEOUT_MS: '30000' });
    const inFlight = await requestInFlight(port);
    signalGroup(proc.child, 'SIGINT');
    await sleep(1_500);
    expect(proc.alive(), proc.output()).toBe(true);
    signalGroup(proc.child, 'SIGINT');
    await Promise.race([proc.exited, sleep(10_000)]);
    expect(proc.alive()).toBe(false);
    expect(proc.output()).toContain('second signal: exiting now');
    inFlight.socket.destroy();
  });
});

describe('draining under keep-alive load', () => {
  it('answers busy keep-alive connections with Connection: close and resets none', async () => {
    const port = await getFreePort();
    const service = await startProcess({
      name: 'governance',
      args: ['scripts/subgraph.ts', 'governance'],
      port,
      env: { ...TEST_SECURITY_ENV, DATA_DIR: dataDir, GOVERNANCE_PORT: String(port), SHUTDOWN_TIMEOUT_MS: '20000', LOG_LEVEL: 'warn' },
    });
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16, pipelining: 1 });
    const failures: string[] = [];
    let answered = 0;
    let toldToClose = 0;
    let refused = 0;
    let stopping = false;
    const body = JSON.stringify({ query: '{ __typename }' });
    async function client(): Promise<void> {
      for (;;) {
        try {
          const res = await pool.request({ path: '/graphql', method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await res.body.text();
          answered++;
          if (res.headers.connection === 'close') toldToClose++;
        } catch (err) {
          const code = (err as { code?: string }).code ?? '';
          const cause = (err as { cause?: { code?: string } }).cause?.code ?? '';
          // A new connection after the listener closed is refused: that is how a client learns to go elsewhere.
          if (stopping && (code === 'ECONNREFUSED' || cause === 'ECONNREFUSED')) {
            refused++;
            return;
          }
          failures.push(`${code || cause}: ${(err as Error).message}`);
          if (failures.length > 50) return;
        }
      }
    }
    const clients = Array.from({ length: 32 }, () => client());
    while (answered < 500) await sleep(50);
    stopping = true;
    service.kill('SIGTERM');
    await Promise.all(clients);
    const status = await service.exited();
    await pool.close();
    expect(failures).toEqual([]);
    expect(toldToClose).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(status.code).toBe(0);
  });
});

/** Every process of a group has exited. */
async function groupGone(pid: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pid, 0);
    } catch {
      return true;
    }
    await sleep(200);
  }
  return false;
}

describe('npm start, signalled as a process manager does (the npm process alone)', () => {
  async function npmStart(): Promise<{ proc: NpmProcess; port: number; dir: string }> {
    const dir = mkdtempSync(join(dataDir, 'start-'));
    const port = await getFreePort();
    const ports: Record<string, string> = {};
    for (const name of Object.keys(subgraphs)) ports[`${name.toUpperCase()}_PORT`] = String(await getFreePort());
    // Embedded defaults (SQLite files, in-process bus), as a fresh clone runs it, whatever CI sets.
    const proc = await npmRun(
      ['start'],
      port,
      { ...ports, GATEWAY_PORT: String(port), DATA_DIR: dir, SEED: 'false', SHUTDOWN_TIMEOUT_MS: '30000', DATABASE_URL: '', REDIS_URL: '' },
      120_000,
    );
    return { proc, port, dir };
  }
  const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('-wal') || f.endsWith('-shm'));

  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s stops every service and leaves the SQLite files closed', async (signal) => {
    const { proc, port, dir } = await npmStart();
    expect(readdirSync(dir).some((f) => f.endsWith('.sqlite'))).toBe(true);
    process.kill(proc.child.pid!, signal);
    expect(await groupGone(proc.child.pid!), proc.output()).toBe(true);
    const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      () => false,
      () => true,
    );
    expect(refused).toBe(true);
    expect(leftovers(dir), proc.output()).toEqual([]);
    expect(proc.output()).not.toContain('second signal');
  });

  it('a second signal forces the exit and still closes the databases', async () => {
    const { proc, port, dir } = await npmStart();
    const inFlight = await requestInFlight(port);
    process.kill(proc.child.pid!, 'SIGTERM');
    await sleep(1_500);
    expect(proc.alive(), proc.output()).toBe(true);
    process.kill(proc.child.pid!, 'SIGTERM');
    expect(await groupGone(proc.child.pid!), proc.output()).toBe(true);
    expect(proc.output()).toContain('second signal: exiting now');
    expect(leftovers(dir)).toEqual([]);
    inFlight.socket.destroy();
  });
});
