// `npm run bench:overload`: the gateway past its capacity, with admission control (the default),
// without it (ADMISSION=off) and stock @apollo/gateway, on the same subgraphs in the same run; then
// the product's load scenarios against ours: normal, spike, stress (and soak on request).
// Every figure comes from autocannon's per-response callback, so admitted answers (2xx) and
// refusals (503) are timed apart. Figures go to bench/README.md by hand, with the load average.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { mintDevToken } from '../gateway/auth/dev-token.ts';
import { PLATFORM_SCOPES } from '../runtime/identity.ts';
import type { BenchOptions } from './options.ts';
import { peakRssMb } from './proc.ts';
import { AGENT_JOIN, type TargetKind } from './scenarios.ts';
import { seedBenchData } from './seed.ts';
import { startServices, type Services } from './services.ts';

const USAGE = `usage: npm run bench:overload -- [flags]
  --duration <s>        seconds per measurement (default 10)
  --connections <n>     the sustainable load: connections of the peak measurement (default 50)
  --factor <n>          overload = factor × connections (default 10)
  --targets <list>      of ours, off (ours with ADMISSION=off), stock (default all three)
  --scenarios <list>    of overload, normal, spike, stress, soak (default all but soak)
  --soak <minutes>      length of the soak scenario (default 30)
  --ours-env K=V        extra environment for our gateways (repeatable), e.g. ADMISSION_LIMIT=64`;

interface Options {
  durationSeconds: number;
  connections: number;
  factor: number;
  targets: TargetKind[];
  scenarios: string[];
  soakMinutes: number;
  oursEnv: Record<string, string>;
}

function parse(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      connections: { type: 'string' },
      factor: { type: 'string' },
      targets: { type: 'string' },
      scenarios: { type: 'string' },
      soak: { type: 'string' },
      'ours-env': { type: 'string', multiple: true },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return 'help';
  const int = (name: string, raw: string | undefined, def: number) => {
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`--${name}: expected a positive integer, got "${raw}"`);
    return Number(raw);
  };
  const targets = (values.targets ?? 'ours,off,stock').split(',').map((t) => (t === 'off' ? 'ours:off' : t));
  for (const t of targets) if (!['ours', 'ours:off', 'stock'].includes(t)) throw new Error(`--targets: unknown target "${t}"`);
  const scenarios = (values.scenarios ?? 'overload,normal,spike,stress').split(',');
  for (const s of scenarios) if (!['overload', 'normal', 'spike', 'stress', 'soak'].includes(s)) throw new Error(`--scenarios: unknown scenario "${s}"`);
  const oursEnv: Record<string, string> = {};
  for (const pair of values['ours-env'] ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--ours-env: expected KEY=VALUE, got "${pair}"`);
    oursEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return {
    durationSeconds: int('duration', values.duration, 10),
    connections: int('connections', values.connections, 50),
    factor: int('factor', values.factor, 10),
    targets: targets as TargetKind[],
    scenarios,
    soakMinutes: int('soak', values.soak, 30),
    oursEnv,
  };
}

/** One load run, its answers timed by class: admitted (2xx), shed (503), and everything else. */
interface Load {
  connections: number;
  seconds: number;
  admittedPerSecond: number;
  shedPerSecond: number;
  admittedP50: number;
  admittedP99: number;
  shedP99: number | null;
  /** Transport errors, timeouts, and statuses other than 2xx and 503. */
  failures: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function load(url: string, headers: Record<string, string>, connections: number, seconds: number, overallRate?: number): Promise<Load> {
  const admitted: number[] = [];
  const shed: number[] = [];
  let other = 0;
  let settle: (result: autocannon.Result) => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const instance = autocannon(
    {
      url: `${url}/graphql`,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify({ query: AGENT_JOIN }),
      connections,
      duration: seconds,
      timeout: 30,
      ...(overallRate ? { overallRate } : {}),
    },
    (err, result) => (err ? fail(err) : settle(result)),
  );
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) admitted.push(ms);
    else if (status === 503) shed.push(ms);
    else other += 1;
  });
  const result = await finished;
  admitted.sort((a, b) => a - b);
  shed.sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    connections,
    seconds,
    admittedPerSecond: round(admitted.length / result.duration),
    shedPerSecond: round(shed.length / result.duration),
    admittedP50: round(percentile(admitted, 50)),
    admittedP99: round(percentile(admitted, 99)),
    shedP99: shed.length === 0 ? null : round(percentile(shed, 99)),
    failures: other + result.errors + result.timeouts,
  };
}

/** Longest /healthz answer, on a new connection every 200 ms, while `during` runs. */
async function probeWhile<T>(url: string, during: Promise<T>): Promise<{ result: T; healthMaxMs: number; healthFailures: number }> {
  let done = false;
  let healthMaxMs = 0;
  let healthFailures = 0;
  const probing = (async () => {
    while (!done) {
      const started = performance.now();
      try {
        const res = await fetch(`${url}/healthz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5_000) });
        await res.arrayBuffer();
        if (res.status !== 200) healthFailures += 1;
      } catch {
        healthFailures += 1;
      }
      healthMaxMs = Math.max(healthMaxMs, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const result = await during;
  done = true;
  await probing;
  return { result, healthMaxMs: Math.round(healthMaxMs), healthFailures };
}

function openHandles(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

const log = (line: string) => process.stderr.write(`[bench:overload] ${line}\n`);
const label = (kind: TargetKind) => (kind === 'ours' ? 'ours (admission)' : kind === 'ours:off' ? 'ours (ADMISSION=off)' : 'stock @apollo/gateway');

async function main(options: Options): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'agent-platform-overload-'));
  const dataDir = join(work, 'data');
  const logDir = join(work, 'logs');
  mkdirSync(logDir, { recursive: true });
  log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const seeded = await seedBenchData({ dataDir, agents: 1000, tasks: 5000, claimedPerAgent: 3 });
  log(`seeded ${seeded.agentIds.length} agents in ${seeded.seconds.toFixed(1)} s`);
  const benchOptions = {
    targets: options.targets,
    variants: [{ name: 'off', env: { ...options.oursEnv, ADMISSION: 'off' } }],
    oursEnv: options.oursEnv,
    oursNodeArgs: [],
    profile: false,
  } as unknown as BenchOptions;
  let services: Services | undefined;
  try {
    services = await startServices(benchOptions, work, dataDir, logDir);
    // A partner's token (every scope but admin): the standard lane, as most traffic is.
    const headers = {
      authorization: `Bearer ${await mintDevToken({ scopes: PLATFORM_SCOPES.filter((s) => s !== 'admin') }, { ...process.env, NODE_ENV: 'development' })}`,
    };
    const { durationSeconds: seconds, connections } = options;
    const lines: string[] = [];
    let oursPeak: number | undefined;

    if (options.scenarios.includes('overload')) {
      lines.push(`## overload: ${connections} → ${connections * options.factor} connections (the 50-agent join), ${seconds} s each`, '');
      lines.push(
        '| target | peak req/s | p99 at peak | admitted req/s overloaded | admitted/peak | admitted p99 | shed req/s | shed p99 | /healthz max | peak RSS MB | p99 1 s after |',
      );
      lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
      for (const kind of options.targets) {
        const gateway = services.gateways.get(kind);
        if (!gateway) continue;
        await load(gateway.baseUrl, headers, connections, 2); // warm-up
        const peak = await load(gateway.baseUrl, headers, connections, seconds);
        if (kind === 'ours') oursPeak = peak.admittedPerSecond;
        const over = await probeWhile(gateway.baseUrl, load(gateway.baseUrl, headers, connections * options.factor, seconds));
        const after = await load(gateway.baseUrl, headers, Math.max(1, Math.round(connections / 5)), 1);
        const o = over.result;
        lines.push(
          `| ${label(kind)} | ${peak.admittedPerSecond} | ${peak.admittedP99} ms | ${o.admittedPerSecond} | ${(o.admittedPerSecond / peak.admittedPerSecond).toFixed(2)} | ${o.admittedP99} ms | ${o.shedPerSecond} | ${o.shedP99 ?? '-'} ms | ${over.healthMaxMs} ms${over.healthFailures ? ` (${over.healthFailures} failed)` : ''} | ${peakRssMb(gateway.pid) ?? '-'} | ${after.admittedP99} ms |`,
        );
        log(
          `${label(kind)}: peak ${peak.admittedPerSecond} req/s; overloaded: admitted ${o.admittedPerSecond} req/s p99 ${o.admittedP99} ms, shed ${o.shedPerSecond} req/s, failures ${o.failures}`,
        );
      }
      lines.push('');
    }

    const ours = services.gateways.get('ours');
    if (ours) {
      oursPeak ??= (await load(ours.baseUrl, headers, connections, seconds)).admittedPerSecond;
      const row = (name: string, l: Load, extra = '') =>
        `| ${name} | ${l.connections} | ${l.admittedPerSecond} | ${l.admittedP50} ms | ${l.admittedP99} ms | ${l.shedPerSecond} | ${l.failures} | ${extra} |`;
      const header = ['| phase | connections | admitted req/s | p50 | p99 | shed req/s | failures | note |', '|---|---|---|---|---|---|---|---|'];
      if (options.scenarios.includes('normal')) {
        const rate = Math.round(oursPeak / 2);
        const normal = await load(ours.baseUrl, headers, connections, seconds, rate);
        lines.push(`## normal: ${rate} req/s (half the peak of ${oursPeak})`, '', ...header, row('steady', normal), '');
      }
      if (options.scenarios.includes('spike')) {
        const before = await load(ours.baseUrl, headers, connections, 3, Math.round(oursPeak / 2));
        const spike = await load(ours.baseUrl, headers, connections * options.factor, 10);
        const back = await load(ours.baseUrl, headers, connections, 3, Math.round(oursPeak / 2));
        lines.push(`## spike: half the peak, then ${options.factor}× the connections at once for 10 s, then back`, '', ...header);
        lines.push(row('before', before), row('spike', spike), row('after', back, 'recovery: p99 back to the before value?'), '');
      }
      if (options.scenarios.includes('stress')) {
        lines.push('## stress: connections doubled until failures or an admitted p99 over 200 ms', '', ...header);
        let knee = 'not reached';
        for (let c = connections; c <= connections * 64; c *= 2) {
          const step = await load(ours.baseUrl, headers, c, Math.max(3, Math.round(seconds / 2)));
          lines.push(row('step', step));
          if (step.failures > 0 || step.admittedP99 > 200) {
            knee = `${c} connections (${step.failures > 0 ? `${step.failures} failures` : `admitted p99 ${step.admittedP99} ms`})`;
            break;
          }
        }
        lines.push('', `knee: ${knee}`, '');
      }
      if (options.scenarios.includes('soak')) {
        const rate = Math.round(oursPeak / 2);
        lines.push(`## soak: ${rate} req/s for ${options.soakMinutes} min; gateway RSS (MB, peak so far) and open handles every minute`, '');
        const samples: string[] = [];
        for (let minute = 1; minute <= options.soakMinutes; minute++) {
          const l = await load(ours.baseUrl, headers, connections, 60, rate);
          samples.push(`${minute}: ${l.admittedPerSecond} req/s p99 ${l.admittedP99} ms, RSS ${peakRssMb(ours.pid)} MB, handles ${openHandles(ours.pid)}`);
          log(samples.at(-1) as string);
        }
        lines.push(...samples.map((s) => `- ${s}`), '');
      }
    }
    lines.push(
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await services?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

const parsed = (() => {
  try {
    return parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
})();
if (parsed === 'help') process.stdout.write(`${USAGE}\n`);
else
  main(parsed).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
