// Pulling a peer's public agents: a DUADP node (its descriptor, then its agents listing page by
// page) or one A2A card URL. Signatures on the cards are verified with the peer's keys (given at
// registration, else the ones its descriptor publishes). Pure HTTP: the store records the outcome.
import type { JWK } from 'jose';
import type { AgentSkill } from './domain.ts';
import { verifyCard } from './cards.ts';
import type { PeerRow, PulledAgent } from './store.ts';

const MAX_BODY = 5 * 1024 * 1024;
const PAGE = 100;
/** A peer listing more is cut here (the catalog says how many it holds). */
export const MAX_REMOTE_AGENTS = 5000;

export class PullError extends Error {}

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new PullError(`GET ${url}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
  }
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > MAX_BODY) throw new PullError(`GET ${url}: body of ${length} bytes exceeds ${MAX_BODY}`);
  const text = await res.text();
  if (res.status !== 200) throw new PullError(`GET ${url}: HTTP ${res.status}`);
  if (text.length > MAX_BODY) throw new PullError(`GET ${url}: body exceeds ${MAX_BODY} bytes`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PullError(`GET ${url}: not JSON`);
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The skills of an A2A card (or a DUADP listing entry), as far as they are well-formed. */
export function skillsOf(value: unknown): AgentSkill[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((s: Record<string, unknown>) => {
    const id = str(s?.id) ?? str(s?.name);
    if (!id) return [];
    return [
      {
        id,
        name: str(s.name) ?? id,
        description: str(s.description),
        tags: strings(s.tags),
        examples: strings(s.examples),
        inputModes: strings(s.inputModes),
        outputModes: strings(s.outputModes),
      },
    ];
  });
}

function jwksOf(value: unknown): { keys: JWK[] } | null {
  const keys = (value as { keys?: unknown } | null)?.keys;
  return Array.isArray(keys) ? { keys: keys as JWK[] } : null;
}

/** Everything the peer lists now. Throws PullError when the peer cannot be read. */
export async function pullPeer(peer: PeerRow, timeoutMs: number): Promise<PulledAgent[]> {
  if (peer.kind === 'A2A_CARD') {
    const card = await getJson(peer.url, timeoutMs);
    const name = str((card as Record<string, unknown>)?.name);
    if (!name) throw new PullError(`GET ${peer.url}: not an A2A Agent Card (no name)`);
    const v = await verifyCard(card, jwksOf(peer.jwks));
    return [
      {
        remoteId: peer.url,
        name,
        description: str((card as Record<string, unknown>).description),
        skills: skillsOf((card as Record<string, unknown>).skills),
        card,
        sourceUrl: peer.url,
        signatureVerified: v.verified,
        signatureError: v.signed && !v.verified ? v.error : null,
      },
    ];
  }
  const descriptorUrl = `${peer.url}/.well-known/duadp.json`;
  const descriptor = (await getJson(descriptorUrl, timeoutMs)) as Record<string, unknown> | null;
  if (!descriptor || typeof descriptor !== 'object') throw new PullError(`GET ${descriptorUrl}: not a DUADP node descriptor`);
  const endpoints = (descriptor.endpoints ?? {}) as Record<string, unknown>;
  const agentsUrl = new URL(str(endpoints.agents) ?? '/api/v1/agents', `${peer.url}/`).toString();
  const keys = jwksOf(peer.jwks) ?? jwksOf((descriptor.identity as Record<string, unknown> | undefined)?.jwks);
  const out: PulledAgent[] = [];
  for (let offset = 0; offset < MAX_REMOTE_AGENTS; offset += PAGE) {
    const url = new URL(agentsUrl);
    url.searchParams.set('limit', String(PAGE));
    url.searchParams.set('offset', String(offset));
    const page = (await getJson(url.toString(), timeoutMs)) as { agents?: unknown; total?: unknown } | null;
    if (!page || !Array.isArray(page.agents)) throw new PullError(`GET ${url}: not a DUADP agents listing (no "agents" array)`);
    for (const a of page.agents as Record<string, unknown>[]) {
      const id = str(a?.id);
      const name = str(a?.name);
      if (!id || !name) continue;
      const card = a.card ?? null;
      const v = card ? await verifyCard(card, keys) : { signed: false, verified: false, error: null };
      out.push({
        remoteId: id,
        name,
        description: str(a.description),
        skills: skillsOf(a.skills ?? (card as Record<string, unknown> | null)?.skills),
        card: card ?? a,
        sourceUrl: str(a.card_url) ?? url.toString(),
        signatureVerified: v.verified,
        signatureError: v.signed && !v.verified ? v.error : null,
      });
    }
    const total = typeof page.total === 'number' ? page.total : 0;
    if (page.agents.length < PAGE || offset + PAGE >= total) break;
  }
  return out;
}
