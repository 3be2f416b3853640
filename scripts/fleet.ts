// `npm run fleet`: the scale-out recipe of the README, on one machine. Two gateways (or --gateways
// N) behind HAProxy, two replicas (or --replicas N) of every subgraph behind each gateway
// (SUBGRAPH_<NAME>_URL lists them all), on PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), every
// process started from the production bundles (`npm run build`) with NODE_ENV=production and
// secrets of its own. `npm run fleet -- --check` also proves it works as a client sees it, then
// stops it and drops what it created (CI runs it); bench/fleet.ts measures it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import pg from 'pg';
import { GATEWAY_NODE_ARGS } from './build-gateway.ts';
import { subgraphsOfSupergraph } from './deploy-files.ts';
import { getFreePort } from './free-port.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** Every subgraph the supergraph composes: a subgraph added there is in the fleet too. */
const SUBGRAPHS = subgraphsOfSupergraph().map((s) => s.name);
/** Replicas by subgraph name; the checks and the benchmark kill and restart agents replicas. */
export type FleetReplicas = Record<string, FleetProcess[]> & { agents: FleetProcess[] };

export interface FleetOptions {
  gateways: number;
  replicas: number;
  databaseUrl: string;
  redisUrl: string;
  /** Where logs and the HAProxy configuration go. */
  workDir: string;
  /** Ports: the balancer's, then the gateways', then the replicas'; free ones when omitted. */
  basePort?: number;
  /** Prefix of the PostgreSQL schemas and Redis channels; a fresh one is isolated from everything else. */
  prefix: string;
  /** Extra environment for every gateway (bench: rate limits off). */
  gatewayEnv?: Record<string, string>;
}

export interface FleetProcess {
  name: string;
  port: number;
  url: string;
  logFile: string;
  child(): ChildProcess;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  /** Starts it again with the same settings and waits until it is ready. */
  restart(): Promise<void>;
  stop(): Promise<number | null>;
}

export interface Fleet {
  /** The balancer's GraphQL endpoint: what clients use. */
  url: string;
  balancerPort: number;
  gateways: FleetProcess[];
  replicas: FleetReplicas;
  /** A token of the fleet's identity provider stand-in: admin of tenant `fleet`. */
  token: string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
// Never leave a fleet behind, whatever happens to this script.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitReady(url: string, child: () => ChildProcess, logFile: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child().exitCode !== null || child().signalCode !== null)
      throw new Error(`${url}: exited before it was ready\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`${url}: not ready within ${timeoutMs} ms\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
}

/** A process whose output goes to a file (a pipe nobody drains would block it). */
async function startProcess(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  port: number,
  workDir: string,
  readyPath = '/readyz',
): Promise<FleetProcess> {
  const logFile = join(workDir, `${name}.log`);
  let current: ChildProcess;
  const spawnIt = () => {
    const fd = openSync(logFile, 'a');
    // Its own process group: Ctrl+C in the terminal reaches only this script, which stops the
    // fleet in order (balancer, gateways, then subgraphs).
    current = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    children.add(current);
    current.once('exit', () => children.delete(current));
  };
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  spawnIt();
  const handle: FleetProcess = {
    name,
    port,
    url: `http://127.0.0.1:${port}/graphql`,
    logFile,
    child: () => current,
    async kill() {
      current.kill('SIGKILL');
      await exited(current);
    },
    async restart() {
      await handle.stop();
      spawnIt();
      await waitReady(`http://127.0.0.1:${port}${readyPath}`, () => current, logFile);
    },
    async stop() {
      if (current.exitCode !== null || current.signalCode !== null) return current.exitCode;
      current.kill('SIGTERM');
      const timer = setTimeout(() => current.kill('SIGKILL'), 15_000);
      await exited(current);
      clearTimeout(timer);
      return current.exitCode;
    },
  };
  await waitReady(`http://127.0.0.1:${port}${readyPath}`, () => current, logFile);
  return handle;
}

/** HAProxy in front of the gateways: health-checked on /readyz, least connections, WebSockets tunnelled. */
function haproxyConfig(port: number, gateways: FleetProcess[]): string {
  return [
    'global',
    '  maxconn 4000',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    // A WebSocket (graphql-ws) lives as long as its subscription.
    '  timeout tunnel 1h',
    // A connection refused by a gateway that is gone is tried on another; a request that reached
    // a gateway is never replayed (it may be a mutation that committed).
    '  retries 3',
    '  option redispatch',
    '  retry-on conn-failure',
    'frontend api',
    `  bind 127.0.0.1:${port}`,
    '  default_backend gateways',
    'backend gateways',
    '  balance leastconn',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    // Out after two failed checks a second apart (a stopping gateway answers /readyz 503 at once).
    '  default-server inter 1s fall 2 rise 2',
    ...gateways.map((g, i) => `  server gateway${i + 1} 127.0.0.1:${g.port} check`),
    '',
  ].join('\n');
}

async function mintToken(secret: string, issuer: string, audience: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tenant: 'fleet', scope: 'admin agents:read agents:write tasks:read tasks:write tasks:delegate' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('operator@fleet')
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 12 * 3600)
    .sign(new TextEncoder().encode(secret));
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  mkdirSync(options.workDir, { recursive: true });
  let next = options.basePort;
  const port = async () => (next === undefined ? getFreePort() : next++);
  const balancerPort = await port();
  const gatewayPorts = await Promise.all(Array.from({ length: options.gateways }, () => port()));
  const issuer = 'https://issuer.fleet.example';
  const audience = 'agent-platform';
  const authSecret = randomBytes(32).toString('hex');
  const shared = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    DATABASE_SCHEMA_PREFIX: options.prefix,
    EVENT_CHANNEL_PREFIX: options.prefix,
    RATE_LIMIT_PREFIX: `${options.prefix}ratelimit`,
    GATEWAY_SIGNING_SECRET: randomBytes(32).toString('hex'),
  };
  const started: FleetProcess[] = [];
  const replicas = { agents: [] } as FleetReplicas;
  // Every replica's port is known before any starts, so each subgraph is told where all the
  // others are (a subgraph calls its peers lazily, as under `npm start`).
  const replicaPorts: Record<string, number[]> = {};
  for (const name of SUBGRAPHS) replicaPorts[name] = await Promise.all(Array.from({ length: options.replicas }, () => port()));
  const urls = Object.fromEntries(
    SUBGRAPHS.map((name) => [`SUBGRAPH_${name.toUpperCase()}_URL`, (replicaPorts[name] ?? []).map((p) => `http://127.0.0.1:${p}/graphql`).join(',')]),
  );
  let balancer: FleetProcess | undefined;
  const stopAll = async () => {
    await balancer?.stop();
    // Gateways first, so nothing is sent to a subgraph that is stopping.
    for (const group of [started.filter((p) => p.name.startsWith('gateway')), started.filter((p) => !p.name.startsWith('gateway'))])
      await Promise.all(group.map((p) => p.stop()));
  };
  try {
    // allSettled: when one fails, the others have finished starting before stopAll stops them.
    const outcomes = await Promise.allSettled(
      SUBGRAPHS.map(async (name) => {
        replicas[name] = [];
        // One replica at a time: the first migrates its schema while the next waits on its advisory lock.
        for (const [i, p] of (replicaPorts[name] ?? []).entries()) {
          const replica = await startProcess(
            `${name}-${i + 1}`,
            process.execPath,
            ['--enable-source-maps', 'dist/subgraph.mjs', name],
            { ...shared, ...urls, [`${name.toUpperCase()}_PORT`]: String(p) },
            p,
            options.workDir,
          );
          replicas[name].push(replica);
          started.push(replica);
        }
      }),
    );
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
    const gateways = await Promise.all(
      gatewayPorts.map(async (p, i) => {
        const gateway = await startProcess(
          `gateway-${i + 1}`,
          process.execPath,
          [...GATEWAY_NODE_ARGS, 'dist/gateway.mjs'],
          { ...shared, ...urls, AUTH_JWT_SECRET: authSecret, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience, GATEWAY_PORT: String(p), ...options.gatewayEnv },
          p,
          options.workDir,
        );
        started.push(gateway);
        return gateway;
      }),
    );
    const config = join(options.workDir, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(balancerPort, gateways));
    balancer = await startProcess('haproxy', 'haproxy', ['-db', '-f', config], {}, balancerPort, options.workDir);
    return {
      url: `http://127.0.0.1:${balancerPort}/graphql`,
      balancerPort,
      gateways,
      replicas,
      token: await mintToken(authSecret, issuer, audience),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

/** Drops the fleet's PostgreSQL schemas (a --check run leaves nothing behind). */
export async function dropFleetSchemas(databaseUrl: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const name of SUBGRAPHS) await client.query(`drop schema if exists "${prefix}${name}" cascade`);
  } finally {
    await client.end();
  }
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      gateways: { type: 'string', default: '2' },
      replicas: { type: 'string', default: '2' },
      'base-port': { type: 'string' },
      check: { type: 'boolean', default: false },
    },
  });
  const count = (name: string, text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > 8) throw new Error(`--${name} must be 1 to 8, got "${text}"`);
    return n;
  };
  return {
    gateways: count('gateways', values.gateways),
    replicas: count('replicas', values.replicas),
    basePort: values['base-port'] === undefined ? undefined : Number(values['base-port']),
    check: values.check,
  };
}

async function main(): Promise<void> {
  const cli = parseOptions();
  const databaseUrl = process.env.DATABASE_URL;
  const redisUrl = process.env.REDIS_URL;
  if (!databaseUrl || !redisUrl) {
    console.error('npm run fleet needs DATABASE_URL (PostgreSQL) and REDIS_URL: replicas share their data and events through them.');
    process.exit(2);
  }
  const workDir = mkdtempSync(join(tmpdir(), 'fleet-'));
  // A check leaves nothing behind; a fleet to play with keeps its data under a fixed prefix.
  const prefix = cli.check ? `fleet${randomBytes(3).toString('hex')}_` : 'fleet_';
  const fleet = await startFleet({
    ...cli,
    databaseUrl,
    redisUrl,
    workDir,
    prefix,
    // The check is one caller making a few thousand requests in a minute: above the default budget.
    ...(cli.check ? { gatewayEnv: { RATE_LIMIT_HTTP_REQUESTS: '1000000' } } : { basePort: cli.basePort ?? 4100 }),
  });
  const lines = [
    `fleet up: HAProxy ${fleet.url} → ${fleet.gateways.length} gateways → ${cli.replicas} replicas of each subgraph (logs in ${workDir})`,
    ...fleet.gateways.map((g) => `  ${g.name.padEnd(16)} ${g.url}`),
    ...Object.values(fleet.replicas)
      .flat()
      .map((r) => `  ${r.name.padEnd(16)} ${r.url}`),
    `  token (admin of tenant "fleet", 12 h): ${fleet.token}`,
  ];
  console.log(lines.join('\n'));
  if (!cli.check) {
    console.log('Ctrl+C stops the fleet.');
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      void fleet.stop().then(() => process.exit(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return;
  }
  const { checkFleet } = await import('./fleet-check.ts');
  let failed = false;
  try {
    await checkFleet(fleet, (line) => console.log(line));
  } catch (err) {
    failed = true;
    console.error(`fleet check failed: ${err instanceof Error ? err.message : String(err)} (logs in ${workDir})`);
  } finally {
    await fleet.stop();
    await dropFleetSchemas(databaseUrl, prefix);
  }
  process.exit(failed ? 1 : 0);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
