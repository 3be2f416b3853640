// Capability matching: a need against a tenant's agents, every part of the score shown. Pure
// functions over an index built once per change of the agents (store.ts keeps it per tenant), so a
// match at 10,000 agents is one pass over arrays and maps, no SQL.
import {
  documentOf,
  HEALTH_RANK,
  skillKeysOf,
  terms,
  type AgentProfile,
  type AgentSkill,
  type Health,
  type Need,
  type TrustLevel,
  type Weights,
} from './domain.ts';

/** BM25's parameters (Robertson et al.): term-frequency saturation and length normalisation. */
const K1 = 1.2;
const B = 0.75;

export interface IndexedAgent {
  origin: 'LOCAL' | 'REMOTE';
  id: string;
  peerId: string | null;
  trust: TrustLevel | null;
  name: string;
  status: string;
  labels: Map<string, string>;
  skillKeys: Set<string>;
  tf: Map<string, number>;
  length: number;
  heartbeatIntervalSeconds: number;
}

export interface MatchIndex {
  agents: IndexedAgent[];
  /** In how many agents each term occurs. */
  df: Map<string, number>;
  averageLength: number;
  /** Positions in `agents` by skill key and by term: a need looks only at agents sharing one. */
  bySkill: Map<string, number[]>;
  byTerm: Map<string, number[]>;
}

export function indexEntry(
  p: { id: string; name: string; description: string | null; skills: readonly AgentSkill[]; labels: readonly { key: string; value: string }[] },
  extra: Pick<IndexedAgent, 'origin' | 'peerId' | 'trust' | 'status' | 'heartbeatIntervalSeconds'>,
): IndexedAgent {
  const words = terms(documentOf(p));
  const tf = new Map<string, number>();
  for (const w of words) tf.set(w, (tf.get(w) ?? 0) + 1);
  return {
    ...extra,
    id: p.id,
    name: p.name,
    labels: new Map(p.labels.map((l) => [l.key, l.value])),
    skillKeys: skillKeysOf(p.skills),
    tf,
    length: words.length,
  };
}

export function buildIndex(agents: IndexedAgent[]): MatchIndex {
  const df = new Map<string, number>();
  const bySkill = new Map<string, number[]>();
  const byTerm = new Map<string, number[]>();
  const post = (m: Map<string, number[]>, key: string, i: number) => {
    const list = m.get(key);
    if (list) list.push(i);
    else m.set(key, [i]);
  };
  let total = 0;
  agents.forEach((a, i) => {
    total += a.length;
    for (const t of a.tf.keys()) {
      df.set(t, (df.get(t) ?? 0) + 1);
      post(byTerm, t, i);
    }
    for (const k of a.skillKeys) post(bySkill, k, i);
  });
  return { agents, df, averageLength: agents.length === 0 ? 1 : Math.max(1, total / agents.length), bySkill, byTerm };
}

/** The positions of the agents that can match: those having a needed skill, else (text only) a query term. */
function candidates(index: MatchIndex, need: Need, queryTerms: string[]): number[] {
  const lists = need.skills.length > 0 ? need.skills.map((s) => index.bySkill.get(s)) : queryTerms.map((t) => index.byTerm.get(t));
  const seen = new Uint8Array(index.agents.length);
  const out: number[] = [];
  for (const list of lists) {
    if (!list) continue;
    for (const i of list) {
      if (seen[i]) continue;
      seen[i] = 1;
      out.push(i);
    }
  }
  return out;
}

export function localEntry(p: AgentProfile): IndexedAgent {
  return indexEntry(
    { id: p.agentId, name: p.name, description: p.description, skills: p.skills, labels: p.labels },
    { origin: 'LOCAL', peerId: null, trust: null, status: p.status, heartbeatIntervalSeconds: p.heartbeatIntervalSeconds },
  );
}

/** What changes between index rebuilds: liveness and load, by agent id. */
export interface LiveState {
  lastHeartbeatAt: string | null;
  /** The same instant in milliseconds (parsed once, not per match). */
  lastHeartbeatMs?: number | null;
  activeTasks: number;
  completed: number;
  failed: number;
}

export interface ScoredMatch {
  origin: 'LOCAL' | 'REMOTE';
  agentId: string;
  peerId: string | null;
  name: string;
  score: number;
  parts: { skills: number; text: number; health: number; load: number; success: number };
  weights: Weights;
  matchedSkills: string[];
  health: Health | null;
  activeTasks: number | null;
  explanation: string;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

/** healthOf, from milliseconds. */
function healthAt(lastMs: number | null, intervalSeconds: number, now: number): Health {
  if (lastMs === null || Number.isNaN(lastMs)) return 'OFFLINE';
  const elapsed = now - lastMs;
  if (elapsed <= 2 * intervalSeconds * 1000) return 'HEALTHY';
  if (elapsed <= 5 * intervalSeconds * 1000) return 'STALE';
  return 'OFFLINE';
}

/**
 * Ranks the index's agents for the need, best first (ties by name, then id). Only ACTIVE local
 * agents are candidates; an agent covering none of the needed skills (or not all, with
 * requireAllSkills), missing a label, below minHealth or above maxActiveTasks is left out; with
 * only text, agents sharing no word with it are left out.
 */
export function rank(index: MatchIndex, need: Need, live: (id: string) => LiveState | undefined, now: number): ScoredMatch[] {
  const queryTerms = need.text === null ? [] : [...new Set(terms(need.text))];
  const n = index.agents.length;
  const idf = queryTerms.map((t) => {
    const df = index.df.get(t) ?? 0;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  });
  const idfSum = idf.reduce((a, b) => a + b, 0);
  const w = need.weights;
  const out: ScoredMatch[] = [];
  for (const position of candidates(index, need, queryTerms)) {
    const a = index.agents[position] as IndexedAgent;
    if (a.origin === 'LOCAL' && a.status !== 'ACTIVE') continue;
    if (a.origin === 'REMOTE' && !need.includeRemote) continue;
    let labelsOk = true;
    for (const l of need.labels) {
      const v = a.labels.get(l.key);
      if (v === undefined || (l.value !== null && v !== l.value)) {
        labelsOk = false;
        break;
      }
    }
    if (!labelsOk) continue;
    const matchedSkills: string[] = [];
    for (const s of need.skills) if (a.skillKeys.has(s)) matchedSkills.push(s);
    if (need.skills.length > 0 && (matchedSkills.length === 0 || (need.requireAllSkills && matchedSkills.length < need.skills.length))) continue;
    const skills = need.skills.length === 0 ? 1 : matchedSkills.length / need.skills.length;
    let textScore = 0;
    if (queryTerms.length > 0 && idfSum > 0) {
      let sum = 0;
      const norm = K1 * (1 - B + (B * a.length) / index.averageLength);
      for (let i = 0; i < queryTerms.length; i++) {
        const tf = a.tf.get(queryTerms[i] as string);
        if (tf) sum += ((idf[i] as number) * (tf * (K1 + 1))) / (tf + norm);
      }
      textScore = sum / (idfSum * (K1 + 1));
      if (need.skills.length === 0 && sum === 0) continue;
    }
    let health: Health | null = null;
    let activeTasks: number | null = null;
    let healthPart = 0.5;
    let loadPart = 0.5;
    let successPart = 0.5;
    if (a.origin === 'LOCAL') {
      const state = live(a.id);
      const beat = state?.lastHeartbeatMs ?? (state?.lastHeartbeatAt ? Date.parse(state.lastHeartbeatAt) : null);
      health = healthAt(beat, a.heartbeatIntervalSeconds, now);
      if (need.minHealth !== null && HEALTH_RANK[health] < HEALTH_RANK[need.minHealth]) continue;
      activeTasks = state?.activeTasks ?? 0;
      if (need.maxActiveTasks !== null && activeTasks > need.maxActiveTasks) continue;
      healthPart = health === 'HEALTHY' ? 1 : health === 'STALE' ? 0.5 : 0;
      loadPart = 1 / (1 + activeTasks);
      successPart = ((state?.completed ?? 0) + 1) / ((state?.completed ?? 0) + (state?.failed ?? 0) + 2);
    } else if (need.minHealth !== null || need.maxActiveTasks !== null) {
      // Unknown for a remote agent: a constraint on it cannot be shown to hold.
      continue;
    }
    const parts = { skills: round(skills), text: round(textScore), health: healthPart, load: round(loadPart), success: round(successPart) };
    const score = round(w.skills * skills + w.text * textScore + w.health * healthPart + w.load * loadPart + w.success * successPart);
    // The explanation is written only for the matches returned (most candidates never are).
    out.push({
      origin: a.origin,
      agentId: a.id,
      peerId: a.peerId,
      name: a.name,
      score,
      parts,
      weights: w,
      matchedSkills,
      health,
      activeTasks,
      explanation: '',
    });
  }
  out.sort((x, y) => y.score - x.score || (x.name < y.name ? -1 : x.name > y.name ? 1 : x.agentId < y.agentId ? -1 : 1));
  const top = out.slice(0, need.limit);
  for (const m of top) {
    m.explanation = (Object.keys(m.parts) as (keyof ScoredMatch['parts'])[])
      .map((k) => `${round(w[k])}×${k} ${m.parts[k]}`)
      .join(' + ')
      .concat(` = ${m.score}`);
  }
  return top;
}
