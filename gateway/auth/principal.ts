// Who is calling, once the gateway has checked the credentials. Every later decision (field
// access, rate limits, the identity passed to subgraphs) reads this and nothing else.
import { GraphQLError } from 'graphql';
import type { IdentityClaims } from '../../runtime/identity.ts';

export interface AuthenticatedPrincipal {
  kind: 'user' | 'apiKey';
  /** The token's `sub`, or `apikey:<id>` for an API key. */
  subject: string;
  tenantId: string;
  scopes: readonly string[];
  /** When the credential stops being valid (a token's exp); null for API keys. */
  expiresAt: Date | null;
  /** Set for API keys: the key's id, the unit rate limits count per. */
  apiKeyId?: string;
  /** Set when the credential belongs to an agent: the only agent this caller may act as. */
  agentId?: string;
}

export interface AnonymousPrincipal {
  kind: 'anonymous';
  subject: null;
  tenantId: null;
  scopes: readonly [];
  expiresAt: null;
}

export type Principal = AuthenticatedPrincipal | AnonymousPrincipal;

/** What a tenant id may look like: it ends up in logs, keys and SQL parameters. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9][\w.:-]{0,127}$/;

/** What an agent claim must look like: an agent id (a UUID, as the agents subgraph issues them). */
export const AGENT_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const ANONYMOUS: AnonymousPrincipal = Object.freeze({ kind: 'anonymous', subject: null, tenantId: null, scopes: [] as const, expiresAt: null });

/** Reasons safe to show the caller: they say what is wrong with the credential, not with us. */
export type AuthFailure =
  | 'expired'
  | 'not yet valid'
  | 'bad signature'
  | 'wrong issuer'
  | 'wrong audience'
  | 'malformed'
  | 'unsupported alg'
  | 'unknown key'
  | 'keys unavailable'
  | 'invalid api key';

/**
 * Credentials were presented and are not acceptable: HTTP 401, code UNAUTHENTICATED. When the
 * identity provider's keys cannot be fetched the caller is not at fault: 503, so clients retry.
 */
export class AuthError extends Error {
  readonly code = 'UNAUTHENTICATED';
  readonly status: 401 | 503;
  constructor(
    readonly reason: AuthFailure,
    /** Extra words for the caller, e.g. which claim is missing. Never a library's internals. */
    readonly detail?: string,
  ) {
    super(`Invalid credentials: ${reason}${detail ? ` (${detail})` : ''}`);
    this.name = 'AuthError';
    this.status = reason === 'keys unavailable' ? 503 : 401;
  }

  toGraphQLError(): GraphQLError {
    return new GraphQLError(this.message, { extensions: { code: this.code, reason: this.reason, http: { status: this.status } } });
  }
}

/**
 * Scope claims come as `scope` (space-separated, RFC 8693) and/or `scopes` / `scp` (arrays, or a
 * space-separated string as some providers send `scp`). Anything else there is a malformed token.
 */
export function scopesFromClaims(claims: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const name of ['scope', 'scopes', 'scp']) {
    const value = claims[name];
    if (value === undefined) continue;
    const items = typeof value === 'string' ? value.split(/\s+/) : Array.isArray(value) ? value : null;
    if (items === null) throw new AuthError('malformed', `claim "${name}" must be a string or an array of strings`);
    for (const item of items) {
      if (typeof item !== 'string' || /\s/.test(item) || item.length > 200) throw new AuthError('malformed', `claim "${name}" has an invalid scope`);
      if (item !== '') out.add(item);
    }
  }
  return [...out];
}

/** The claims the gateway signs for a principal into every subgraph identity (subgraph fetches and shared streams alike). */
export function identityClaims(principal: Principal): IdentityClaims {
  return {
    kind: principal.kind,
    subject: principal.subject,
    tenantId: principal.tenantId,
    scopes: principal.scopes,
    agentId: principal.kind === 'anonymous' ? null : (principal.agentId ?? null),
  };
}
