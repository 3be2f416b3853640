// Before anything is timed, every target answers each scenario's fixed request and the answers
// are compared: a fast gateway that returns different data is not faster, it is broken.
import type { HttpCall, Scenario, TargetKind } from './scenarios.ts';

export interface TargetEndpoint {
  kind: TargetKind;
  baseUrl: string;
}

export interface CheckResult {
  same: boolean;
  /** What differed, or which target failed; empty when all agree. */
  detail: string;
}

/** Object keys sorted at every level, so equal data serialises equally whatever the key order. */
export function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, normalise((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export async function send(baseUrl: string, call: HttpCall, extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${baseUrl}${call.path}`, {
    method: call.method,
    headers: { accept: 'application/json', ...(call.method === 'POST' ? { 'content-type': 'application/json' } : {}), ...extraHeaders },
    ...(call.method === 'POST' ? { body: call.body ?? '' } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: res.status, body: text };
  }
}

export async function checkSameData(scenario: Scenario, targets: readonly TargetEndpoint[], headers: Record<string, string> = {}): Promise<CheckResult> {
  const answers: { kind: TargetKind; text: string }[] = [];
  for (const target of targets) {
    const { status, body } = await send(target.baseUrl, scenario.check(target.kind), headers);
    const errors = body && typeof body === 'object' ? (body as { errors?: unknown }).errors : undefined;
    if (status !== 200 || errors) return { same: false, detail: `${target.kind} answered ${status}: ${JSON.stringify(body).slice(0, 300)}` };
    const compared = scenario.comparable ? scenario.comparable(target.kind, body) : body;
    answers.push({ kind: target.kind, text: JSON.stringify(normalise(compared)) });
  }
  const [first, ...rest] = answers;
  if (!first) return { same: false, detail: 'no target to compare' };
  for (const other of rest) {
    if (other.text !== first.text) {
      return { same: false, detail: `${other.kind} differs from ${first.kind}: ${other.text.slice(0, 200)} … vs … ${first.text.slice(0, 200)}` };
    }
  }
  if (first.text === '[]' || first.text === 'null') return { same: false, detail: 'the answers are empty: nothing was compared' };
  return { same: true, detail: '' };
}
