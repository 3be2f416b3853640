// How a search's ranked lists become scored hits: reciprocal rank fusion of the lexical and
// vector lists, then the optional recency and importance weighting. Pure: the store supplies the
// lists, this decides the order and explains every score.
import { RRF_K, recencyOf, type SearchMode, type SearchRequest } from './domain.ts';

export interface LexicalCandidate {
  id: string;
  /** Higher is better (−bm25, or ts_rank_cd). */
  score: number;
}

export interface VectorCandidate {
  id: string;
  distance: number;
  similarity: number;
}

export interface Scored {
  id: string;
  score: number;
  mode: SearchMode;
  lexicalRank: number | null;
  lexicalScore: number | null;
  vectorRank: number | null;
  vectorDistance: number | null;
  fusedScore: number | null;
  recency: number | null;
  explanation: string;
}

const round = (n: number) => Number(n.toPrecision(6));

/**
 * Orders the candidates (each list best first) and keeps the k best above minScore. `facts` gives
 * each candidate's createdAt and importance, needed only when weighting asks for them.
 */
export function rank(
  req: SearchRequest,
  lexical: LexicalCandidate[],
  vector: VectorCandidate[],
  facts: (id: string) => { createdAt: string; importance: number },
  now: number,
): Scored[] {
  const byId = new Map<string, Scored>();
  const entry = (id: string): Scored => {
    let s = byId.get(id);
    if (!s) {
      s = {
        id,
        score: 0,
        mode: req.mode,
        lexicalRank: null,
        lexicalScore: null,
        vectorRank: null,
        vectorDistance: null,
        fusedScore: null,
        recency: null,
        explanation: '',
      };
      byId.set(id, s);
    }
    return s;
  };
  lexical.forEach((c, i) => {
    const s = entry(c.id);
    s.lexicalRank = i + 1;
    s.lexicalScore = c.score;
  });
  const similarity = new Map<string, number>();
  vector.forEach((c, i) => {
    const s = entry(c.id);
    s.vectorRank = i + 1;
    s.vectorDistance = c.distance;
    similarity.set(c.id, c.similarity);
  });

  const weighted = req.recencyWeight > 0 || req.importanceWeight > 0;
  const baseShare = 1 - req.recencyWeight - req.importanceWeight;
  for (const s of byId.values()) {
    let base: number;
    let how: string;
    if (req.mode === 'HYBRID') {
      const parts = [s.lexicalRank, s.vectorRank].filter((r): r is number => r !== null);
      base = parts.reduce((sum, r) => sum + 1 / (RRF_K + r), 0);
      s.fusedScore = base;
      how = `rrf(k=${RRF_K}) = ${[
        s.lexicalRank !== null ? `1/(${RRF_K}+${s.lexicalRank}) lexical` : 'not in lexical list',
        s.vectorRank !== null ? `1/(${RRF_K}+${s.vectorRank}) vector` : 'not in vector list',
      ].join(' + ')} = ${round(base)}`;
    } else if (req.mode === 'LEXICAL') {
      base = s.lexicalScore ?? 0;
      how = `lexical relevance ${round(base)} (rank ${s.lexicalRank})`;
    } else {
      base = similarity.get(s.id) ?? 0;
      how = `${req.metric.toLowerCase()} similarity ${round(base)} (distance ${round(s.vectorDistance ?? 0)}, rank ${s.vectorRank})`;
    }
    if (!weighted) {
      s.score = base;
      s.explanation = how;
      continue;
    }
    const { createdAt, importance } = facts(s.id);
    const recency = recencyOf(createdAt, now, req.recencyHalfLifeSeconds);
    s.recency = recency;
    s.score = baseShare * base + req.recencyWeight * recency + req.importanceWeight * importance;
    s.explanation = `${round(baseShare)} × [${how}] + ${req.recencyWeight} × recency ${round(recency)} + ${req.importanceWeight} × importance ${importance} = ${round(s.score)}`;
  }
  const minScore = req.minScore;
  return [...byId.values()]
    .filter((s) => minScore === null || s.score >= minScore)
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
    .slice(0, req.k);
}
