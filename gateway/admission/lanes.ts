import type { IncomingMessage } from 'node:http';
import { scopesFromClaims } from '../auth/principal.ts';
import type { Lane } from './gate.ts';

/** Longest bearer token whose claims are read for a lane; longer ones go in the standard lane. */
const MAX_PEEKED_TOKEN = 8192;

/**
 * The lane of a request, from its credentials as presented: a bearer token carrying the agent
 * claim (an agent's credential) or the admin scope (an operator's) goes in the reserved lane. The
 * token is NOT verified here (that happens once the request is admitted, as for every request):
 * admission must cost microseconds when it refuses, and a forged token gains only a place in the
 * reserved lane's queue, never access, as it then fails authentication like any other. API keys
 * cannot be told apart without asking governance, so they go in the standard lane.
 */
export function laneOf(req: IncomingMessage, agentClaim: string): Lane {
  const authorization = req.headers.authorization;
  if (!authorization || authorization.length > MAX_PEEKED_TOKEN + 7 || !/^bearer /i.test(authorization)) return 'standard';
  const payload = authorization.slice(7).trim().split('.')[1];
  if (!payload) return 'standard';
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return 'standard';
  }
  if (!claims || typeof claims !== 'object') return 'standard';
  const record = claims as Record<string, unknown>;
  if (typeof record[agentClaim] === 'string') return 'reserved';
  try {
    return scopesFromClaims(record).includes('admin') ? 'reserved' : 'standard';
  } catch {
    return 'standard';
  }
}
