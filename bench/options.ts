// Command-line flags of `npm run bench -- [flags]`.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { TargetKind } from './scenarios.ts';

export interface BenchOptions {
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  connections: number;
  agents: number;
  tasks: number;
  claimedPerAgent: number;
  /** Scenario ids to run; all when empty. */
  scenarios: string[];
  targets: TargetKind[];
  /** CPU-profile the gateways during the first round (V8 inspector); profiles land next to the results. */
  profile: boolean;
  /** Extra node flags for our gateway (and its variants), e.g. --trace-gc. */
  oursNodeArgs: string[];
  /** Extra environment for our gateway (KEY=VALUE). */
  oursEnv: Record<string, string>;
  /**
   * More instances of our gateway with other settings, measured as targets of their own; with
   * `root`, the gateway of another checkout of this repository (--compare).
   */
  variants: { name: string; env: Record<string, string>; nodeArgs?: string[]; root?: string }[];
  /** Send a development token (npm run token's default admin) on every request to every target; false with --anonymous. */
  token: boolean;
  /** Keep the seeded data and the services' logs (they are deleted after a successful run). */
  keep: boolean;
  /** Free text stored in the result file (e.g. "before dedup"). */
  label: string;
  seed: number;
  outDir: string;
}

export const USAGE = `usage: npm run bench -- [flags]
  --quick               short run: 2 s per measurement, 1 s warm-up, 3 rounds (about 2 minutes)
  --duration <s>        seconds per measurement (default 10)
  --warmup <s>          seconds of discarded warm-up per scenario and target (default 3)
  --rounds <n>          rounds; targets alternate in every round (default 3, at least 1)
  --connections <n>     concurrent connections (default 50)
  --scenarios <ids>     comma-separated subset of: list, join, lookup, mutation, rest
  --targets <kinds>     comma-separated subset of: subgraph, stock, ours
  --agents <n>          agents seeded (default 1000)
  --tasks <n>           tasks seeded, spread over the agents (default 5000)
  --claimed <n>         tasks each agent holds (default 3)
  --profile             CPU-profile each gateway during its first-round measurements (inspector)
  --ours-env K=V        extra environment for our gateway (repeatable)
  --ours-node-arg <flag> extra node flag for our gateway and its variants (repeatable), e.g.
                        --ours-node-arg=--trace-gc (with --keep to read the logs)
  --variant name:K=V,…  also measure our gateway with these settings, in the same run, as
                        "our gateway (name)" (repeatable), e.g. --variant no-dedup:SUBGRAPH_DEDUP=false;
                        items starting with -- are node flags: --variant gc:--max-semi-space-size=32
  --compare name=<dir>  also measure the gateway of another checkout (e.g. the last commit,
                        \`git archive HEAD | tar -x -C <dir>\` plus a node_modules link), in the
                        same run, as "our gateway (name)" (repeatable): A/B on one machine state
  --anonymous           send no credentials (by default every request to every target carries
                        Authorization: Bearer <development token>, npm run token's default admin)
  --keep                keep the seeded data and every service's log (e.g. with
                        --ours-env NODE_OPTIONS=--trace-gc) instead of deleting them
  --label <text>        stored in the result file
  --seed <n>            seed of the random ids (default 42)
  --out <dir>           where the result file goes (default bench/results)
  --help`;

const TARGETS: TargetKind[] = ['subgraph', 'stock', 'ours'];

function positiveInt(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
  return value;
}

function envPairs(flag: string, pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`${flag} expects KEY=VALUE, got "${pair}"`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

export function parseOptions(argv: string[], defaultOutDir: string): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      scenarios: { type: 'string' },
      targets: { type: 'string' },
      agents: { type: 'string' },
      tasks: { type: 'string' },
      claimed: { type: 'string' },
      profile: { type: 'boolean' },
      'ours-env': { type: 'string', multiple: true },
      'ours-node-arg': { type: 'string', multiple: true },
      variant: { type: 'string', multiple: true },
      compare: { type: 'string', multiple: true },
      anonymous: { type: 'boolean' },
      label: { type: 'string' },
      keep: { type: 'boolean' },
      seed: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  const targets = values.targets ? values.targets.split(',').map((t) => t.trim()) : TARGETS;
  const unknown = targets.filter((t) => !TARGETS.includes(t as TargetKind));
  if (unknown.length > 0) throw new Error(`--targets: unknown ${unknown.join(', ')}; expected ${TARGETS.join(', ')}`);
  const oursEnv = envPairs('--ours-env', values['ours-env'] ?? []);
  const variants: BenchOptions['variants'] = (values.variant ?? []).map((spec) => {
    const colon = spec.indexOf(':');
    const name = colon > 0 ? spec.slice(0, colon) : '';
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`--variant expects name:KEY=VALUE,… with a lower-case name, got "${spec}"`);
    const items = spec.slice(colon + 1).split(',');
    const nodeArgs = items.filter((i) => i.startsWith('--'));
    const env = {
      ...oursEnv,
      ...envPairs(
        '--variant',
        items.filter((i) => !i.startsWith('--')),
      ),
    };
    return nodeArgs.length > 0 ? { name, env, nodeArgs } : { name, env };
  });
  for (const spec of values.compare ?? []) {
    const eq = spec.indexOf('=');
    const name = eq > 0 ? spec.slice(0, eq) : '';
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || eq === spec.length - 1) throw new Error(`--compare expects name=<dir> with a lower-case name, got "${spec}"`);
    variants.push({ name, env: oursEnv, root: resolve(spec.slice(eq + 1)) });
  }
  return {
    durationSeconds: positiveInt('duration', values.duration, quick ? 2 : 10),
    warmupSeconds: positiveInt('warmup', values.warmup, quick ? 1 : 3, 0),
    rounds: positiveInt('rounds', values.rounds, 3),
    connections: positiveInt('connections', values.connections, 50),
    agents: positiveInt('agents', values.agents, 1000),
    tasks: positiveInt('tasks', values.tasks, 5000, 0),
    claimedPerAgent: positiveInt('claimed', values.claimed, 3, 0),
    scenarios: values.scenarios ? values.scenarios.split(',').map((s) => s.trim()) : [],
    targets: [...(targets as TargetKind[]), ...variants.map((v): TargetKind => `ours:${v.name}`)],
    profile: values.profile ?? false,
    oursEnv,
    oursNodeArgs: values['ours-node-arg'] ?? [],
    variants,
    token: !(values.anonymous ?? false),
    keep: values.keep ?? false,
    label: values.label ?? (quick ? 'quick' : ''),
    seed: positiveInt('seed', values.seed, 42, 0),
    outDir: values.out ?? defaultOutDir,
  };
}
