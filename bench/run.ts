// `npm run bench`: the subgraphs on a seeded data set, then side by side the subgraph queried
// directly, stock @apollo/gateway and our gateway, each its own process, under the same load;
// targets alternate within every round. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './launcher.ts';
import { measure, type Measurement } from './measure.ts';
import { parseOptions, USAGE, type BenchOptions } from './options.ts';
import { peakRssMb } from './proc.ts';
import { summarise as summariseProfile, type CpuProfile } from './profile-summary.ts';
import { cpuProcessOf, markdownTable, memoryTable, profileText, summarise, withRatios, type ProfileRecord, type ScenarioSummary } from './report.ts';
import { isOurs, scenarios as allScenarios, seededRandom, targetLabel, type Scenario, type TargetKind } from './scenarios.ts';
import { mintDevToken } from '../scripts/token.ts';
import { seedBenchData } from './seed.ts';
import { startServices, type Services } from './services.ts';
import { checkSameData, send, type TargetEndpoint } from './verify.ts';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => console.error(`[bench] ${message}`);

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

function endpointOf(services: Services, scenario: Scenario, kind: TargetKind): string | undefined {
  if (kind === 'subgraph') return scenario.directSubgraph ? services.subgraphs[scenario.directSubgraph]?.baseUrl : undefined;
  return services.gateways.get(kind)?.baseUrl;
}

/** The REST scenario runs once our gateway serves the route; until then it says why it is skipped. */
async function restSkipReason(services: Services, scenario: Scenario, headers: Record<string, string>): Promise<string | null> {
  if (!scenario.needsRestRoute) return null;
  const ours = [...services.gateways.entries()].find(([kind]) => isOurs(kind))?.[1];
  if (!ours) return 'our gateway is not among the targets';
  const { status, body } = await send(ours.baseUrl, { method: 'GET', path: scenario.needsRestRoute }, headers);
  if (status === 200) return null;
  if (status === 404) return `GET ${scenario.needsRestRoute} answered 404 on our gateway: the REST facade (gateway/rest/) does not serve it yet`;
  return `GET ${scenario.needsRestRoute} answered ${status} on our gateway: ${JSON.stringify(body).slice(0, 200)}`;
}

async function main(opts: BenchOptions): Promise<void> {
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const work = mkdtempSync(join(tmpdir(), 'agent-platform-bench-'));
  const dataDir = join(work, 'data');
  const logDir = join(work, 'logs');
  const profileDir = join(opts.outDir, `profiles-${stamp}`);
  mkdirSync(logDir, { recursive: true });
  mkdirSync(opts.outDir, { recursive: true });
  if (opts.profile) mkdirSync(profileDir, { recursive: true });

  log(`seeding ${opts.agents} agents and ${opts.tasks} tasks (${opts.claimedPerAgent} held per agent) into ${dataDir}`);
  const seeded = await seedBenchData({ dataDir, agents: opts.agents, tasks: opts.tasks, claimedPerAgent: opts.claimedPerAgent });
  log(`seeded in ${seeded.seconds.toFixed(1)} s (${seeded.claimed} tasks held)`);

  let services: Services | undefined;
  let finished = false;
  try {
    services = await startServices(opts, work, dataDir, logDir);
    const running = services;
    const watched = running.all();
    log(`services: ${watched.map((w) => `${w.name} pid ${w.pid}`).join(', ')}; logs in ${logDir}`);

    const headers: Record<string, string> = opts.token
      ? { authorization: `Bearer ${await mintDevToken({}, { ...process.env, NODE_ENV: 'development' })}` }
      : {};
    const chosen = allScenarios({ agentIds: seeded.agentIds }).filter((s) => opts.scenarios.length === 0 || opts.scenarios.includes(s.id));
    const plans: { scenario: Scenario; targets: TargetEndpoint[]; summary: ScenarioSummary }[] = [];
    for (const scenario of chosen) {
      const summary: ScenarioSummary = { id: scenario.id, title: scenario.title, sameData: null, skipped: null, targets: [] };
      const targets = opts.targets
        .map((kind) => ({ kind, baseUrl: endpointOf(running, scenario, kind) }))
        .filter((t): t is TargetEndpoint => t.baseUrl !== undefined);
      summary.skipped = await restSkipReason(running, scenario, headers);
      if (!summary.skipped) {
        summary.sameData = await checkSameData(scenario, targets, headers);
        log(`same data for "${scenario.title}": ${summary.sameData.same ? 'yes' : `NO (${summary.sameData.detail})`}`);
        // Timing a target that answers with errors (or other data) would only measure the error path.
        if (!summary.sameData.same) summary.skipped = `not timed: the targets do not return the same data (${summary.sameData.detail})`;
      }
      if (summary.skipped) log(`skipping "${scenario.title}": ${summary.skipped}`);
      plans.push({ scenario, targets, summary });
    }
    const active = plans.filter((p) => !p.summary.skipped);

    const run = (scenario: Scenario, target: TargetEndpoint, seconds: number) =>
      measure({
        baseUrl: target.baseUrl,
        call: scenario.call(target.kind, seededRandom(opts.seed)),
        connections: opts.connections,
        durationSeconds: seconds,
        watched,
        headers,
      });

    if (opts.warmupSeconds > 0) {
      log(`warm-up: ${opts.warmupSeconds} s per scenario and target, discarded`);
      for (const { scenario, targets } of active) for (const target of targets) await run(scenario, target, opts.warmupSeconds);
    }

    const measured = new Map<string, Measurement[]>();
    const profiles: ProfileRecord[] = [];
    const key = (scenario: Scenario, kind: TargetKind) => `${scenario.id}/${kind}`;
    for (let r = 0; r < opts.rounds; r++) {
      for (const { scenario, targets } of active) {
        // Rotate the order every round, so no target always runs first (or right after another).
        const order = targets.map((_, i) => targets[(i + r) % targets.length] as TargetEndpoint);
        for (const target of order) {
          await sleep(300);
          // The first round's measurement of each gateway is profiled: the same load, no start-up.
          const profiler = r === 0 ? running.profilers.get(target.kind) : undefined;
          await profiler?.start();
          const m = await run(scenario, target, opts.durationSeconds);
          if (profiler) {
            const file = join(profileDir, `${scenario.id}-${target.kind.replace(':', '-')}.cpuprofile`);
            const profile = await profiler.stop();
            writeFileSync(file, JSON.stringify(profile));
            profiles.push({ scenario: scenario.id, target: target.kind, file, summary: summariseProfile(profile as CpuProfile, 15) });
          }
          measured.set(key(scenario, target.kind), [...(measured.get(key(scenario, target.kind)) ?? []), m]);
          const failed = Object.values(m.failures).some((n) => n > 0) ? `, failures ${JSON.stringify(m.failures)}` : '';
          log(
            `round ${r + 1}/${opts.rounds} ${scenario.id} ${target.kind}: ${m.requestsPerSecond} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, CPU ${JSON.stringify(m.cpuMsPerRequest)} ms/req${failed}`,
          );
        }
      }
    }

    for (const { scenario, targets, summary } of active) {
      summary.targets = withRatios(
        targets.map((t) => summarise(t.kind, measured.get(key(scenario, t.kind)) ?? [], cpuProcessOf(t.kind, scenario.directSubgraph))),
      );
    }
    const peakRss: Record<string, number | null> = {};
    for (const w of watched) peakRss[w.name in running.subgraphs ? `${w.name} subgraph` : targetLabel(w.name as TargetKind)] = peakRssMb(w.pid);

    const summaries = plans.map((p) => p.summary);
    const result = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      label: opts.label,
      commit: gitCommit(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverageAtStart: loadavg() },
      options: opts,
      data: { agents: opts.agents, tasks: opts.tasks, held: seeded.claimed },
      scenarios: summaries,
      peakRssMb: peakRss,
      profiles,
    };
    const file = join(opts.outDir, `${stamp}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

    console.log(`\n## Benchmark ${result.startedAt}${opts.label ? ` (${opts.label})` : ''}\n`);
    console.log(
      `${opts.connections} connections, ${opts.rounds} rounds × ${opts.durationSeconds} s per target (medians), ${opts.warmupSeconds} s warm-up discarded; ` +
        `${opts.agents} agents, ${opts.tasks} tasks; ${result.machine.cpus} CPUs, Node ${process.version}, load average at start ${result.machine.loadAverageAtStart[0]?.toFixed(2)}.\n` +
        "CPU ms/req is the target process's own CPU time (the subgraph's for the direct target) per completed request.\n",
    );
    console.log(markdownTable(summaries));
    console.log(`\n${memoryTable(peakRss)}\n`);
    console.log(`Result file: ${file}`);
    for (const p of profiles) console.log(`\n${profileText(p)}`);
    if (opts.profile) console.log(`\nCPU profiles (open in Chrome DevTools or speedscope): ${profileDir}`);
    finished = true;
  } finally {
    await services?.stop();
    if (finished && !opts.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept the data and the services' logs in ${work}`);
  }
}

let options: BenchOptions | 'help';
try {
  options = parseOptions(process.argv.slice(2), RESULTS_DIR);
} catch (err) {
  console.error(`${(err as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (options === 'help') console.log(USAGE);
else await main(options);
