// Turns the rounds of measurements into medians, ratios to stock @apollo/gateway and a Markdown
// table. Medians over alternated rounds, because the machine is shared and noisy.
import type { Measurement } from './measure.ts';
import type { ProfileSummary } from './profile-summary.ts';
import { targetLabel, type TargetKind } from './scenarios.ts';

export interface TargetSummary {
  target: TargetKind;
  /** One per round, in round order. */
  rounds: Measurement[];
  median: {
    requestsPerSecond: number;
    p50: number;
    p99: number;
    /** CPU ms per request of the target's own process (the subgraph's for the direct target). */
    cpuMsPerRequest: number | null;
  };
  /** Lowest and highest requests/s over the rounds: the noise. */
  range: [number, number];
  /** Requests/s divided by stock @apollo/gateway's, medians of the same run. */
  ratioToStock: number | null;
  /**
   * Lowest and highest ratio of a single round (each round measures every target in turn, so a
   * round's ratio compares targets under the same machine state): how firm the median ratio is.
   */
  ratioRange: [number, number] | null;
  failures: number;
}

export interface ScenarioSummary {
  id: string;
  title: string;
  sameData: { same: boolean; detail: string } | null;
  skipped: string | null;
  targets: TargetSummary[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The process whose CPU counts for a target: the gateway (named after its kind), or the subgraph queried directly. */
export function cpuProcessOf(target: TargetKind, directSubgraph: string | undefined): string {
  return target === 'subgraph' ? (directSubgraph ?? 'agents') : target;
}

export function summarise(target: TargetKind, rounds: Measurement[], cpuProcess: string): Omit<TargetSummary, 'ratioToStock' | 'ratioRange'> {
  const rps = rounds.map((m) => m.requestsPerSecond);
  const cpu = rounds.map((m) => m.cpuMsPerRequest[cpuProcess]).filter((v): v is number => typeof v === 'number');
  return {
    target,
    rounds,
    median: {
      requestsPerSecond: round(median(rps), 1),
      p50: round(median(rounds.map((m) => m.p50)), 1),
      p99: round(median(rounds.map((m) => m.p99)), 1),
      cpuMsPerRequest: cpu.length > 0 ? round(median(cpu), 3) : null,
    },
    range: [Math.min(...rps), Math.max(...rps)],
    failures: rounds.reduce((n, m) => n + m.failures.errors + m.failures.timeouts + m.failures.non2xx + m.failures.graphqlErrors, 0),
  };
}

export function withRatios(targets: Omit<TargetSummary, 'ratioToStock' | 'ratioRange'>[]): TargetSummary[] {
  const stockTarget = targets.find((t) => t.target === 'stock');
  const stock = stockTarget?.median.requestsPerSecond;
  return targets.map((t) => {
    const perRound = t.rounds.flatMap((m, i) => {
      const stockRound = stockTarget?.rounds[i]?.requestsPerSecond;
      return stockRound ? [round(m.requestsPerSecond / stockRound, 2)] : [];
    });
    return {
      ...t,
      ratioToStock: stock ? round(t.median.requestsPerSecond / stock, 2) : null,
      ratioRange: perRound.length > 0 ? [Math.min(...perRound), Math.max(...perRound)] : null,
    };
  });
}

function ratioCell(t: TargetSummary): string {
  if (t.ratioToStock === null) return 'n/a';
  const median = `${t.ratioToStock.toFixed(2)}×`;
  if (!t.ratioRange || t.target === 'stock' || t.rounds.length < 2) return median;
  return `${median} (${t.ratioRange[0].toFixed(2)}–${t.ratioRange[1].toFixed(2)})`;
}

const fmt = (value: number | null, digits = 0) =>
  value === null || Number.isNaN(value) ? 'n/a' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function markdownTable(scenarios: readonly ScenarioSummary[]): string {
  const lines = [
    '| scenario | target | req/s (median) | req/s range | p50 ms | p99 ms | CPU ms/req | × stock (rounds) | failures | same data |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of scenarios) {
    if (s.skipped) {
      lines.push(`| ${s.title} | (skipped) | | | | | | | | ${s.skipped.slice(0, 160).replace(/\|/g, '/')} |`);
      continue;
    }
    const same = s.sameData ? (s.sameData.same ? 'yes' : `NO: ${s.sameData.detail.slice(0, 80)}`) : 'n/a';
    for (const t of s.targets) {
      lines.push(
        `| ${s.title} | ${targetLabel(t.target)} | ${fmt(t.median.requestsPerSecond)} | ${fmt(t.range[0])}–${fmt(t.range[1])} | ${fmt(t.median.p50, 1)} | ${fmt(t.median.p99, 1)} | ${fmt(t.median.cpuMsPerRequest, 2)} | ${ratioCell(t)} | ${t.failures} | ${same} |`,
      );
    }
  }
  return lines.join('\n');
}

export function memoryTable(peakRss: Record<string, number | null>): string {
  const lines = ['| process | peak RSS (VmHWM) MB |', '|---|---:|'];
  for (const [name, mb] of Object.entries(peakRss)) lines.push(`| ${name} | ${fmt(mb, 1)} |`);
  return lines.join('\n');
}

export interface ProfileRecord {
  scenario: string;
  target: TargetKind;
  file: string;
  summary: ProfileSummary;
}

export function profileText(p: ProfileRecord): string {
  return [
    `### Profile: ${p.scenario}, ${targetLabel(p.target)} (busy ${p.summary.busyMs} ms of ${p.summary.totalMs} ms sampled)`,
    '',
    ...p.summary.byArea.slice(0, 12).map((a) => `- ${a.name}: ${a.percent} %`),
    '',
    'Top functions (self time):',
    ...p.summary.byFunction.map((f) => `- ${f.name}: ${f.percent} %`),
  ].join('\n');
}
