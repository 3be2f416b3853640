// The gateway → subgraph trust token. The gateway authenticates the caller, then signs a
// short-lived JWT naming who the caller is (subject, tenant, scopes) for one subgraph (the
// audience); subgraphs accept a request only with a valid one, so calling a subgraph directly
// bypasses nothing. Without a token a subgraph answers 401, except with ALLOW_UNSIGNED_DEV=true,
// which production refuses to start with.
import { GraphQLError } from 'graphql';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { commonSpec, ConfigError, env, loadConfig } from './config.ts';
import { DEFAULT_TENANT } from './context.ts';
import { encodeSegment, hmacKey, signHs256, verifyHs256 } from './hs256.ts';

/** The request header the gateway puts the token in. Clients must never be able to set it. */
export const IDENTITY_HEADER = 'x-gateway-identity';

/**
 * The scopes the platform's operations ask for (@requiresScopes); `admin` manages the tenant;
 * `tasks:delegate` lets a caller that is not an agent act on a task on behalf of a named agent;
 * `memory:shared` lets a caller write the tenant's shared/... memory namespaces;
 * `integrations:read`/`integrations:write` see and manage webhooks, inbound integrations and triggers.
 * `discovery:read` matches agents and reads the service registry, peers and private cards,
 * `discovery:write` changes agents' discovery settings, services and peers.
 * `collaboration:read` reads channels, messages and presence, `collaboration:write` posts and
 * changes them.
 */
export const PLATFORM_SCOPES = [
  'admin',
  'agents:read',
  'agents:write',
  'tasks:read',
  'tasks:write',
  'tasks:delegate',
  'memory:read',
  'memory:write',
  'memory:shared',
  'integrations:read',
  'integrations:write',
  'discovery:read',
  'discovery:write',
  'collaboration:read',
  'collaboration:write',
] as const;
export type PlatformScope = (typeof PLATFORM_SCOPES)[number];

/**
 * What an agent acts with (an agent credential's scopes, `npm run token -- --agent`'s default):
 * read the registry and the task queue, change its own record, work its tasks. Never `admin`
 * (keys of the tenant) nor `tasks:delegate` (acting for other agents).
 */
export const AGENT_SCOPES = [
  'agents:read',
  'agents:write',
  'tasks:read',
  'tasks:write',
  'memory:read',
  'memory:write',
  'collaboration:read',
  'collaboration:write',
] as const satisfies readonly PlatformScope[];

/** Outside production only: a fixed, public secret, so a fresh checkout runs with no setup. */
export const DEV_GATEWAY_SIGNING_SECRET = 'development-only-gateway-signing-secret-never-use-in-production';

const ISSUER = 'agent-platform-gateway';
// A distinct token type: a user JWT can never be replayed as an identity token, nor the reverse,
// even if an operator reused one secret for both.
const TOKEN_TYPE = 'gateway-identity+jwt';
const CLOCK_TOLERANCE_SECONDS = 5;
const REQUIRED_CLAIMS = ['exp', 'iat'] as const;
const MIN_SECRET_BYTES = 32;

export const identitySpec = {
  NODE_ENV: commonSpec.NODE_ENV,
  GATEWAY_SIGNING_SECRET: env.optionalString(
    `secret (at least ${MIN_SECRET_BYTES} bytes) the gateway signs caller identities for the subgraphs with; the same value on the gateway and every subgraph; required in production`,
  ),
  ALLOW_UNSIGNED_DEV: env.bool('development only: subgraphs accept requests without a gateway identity token, acting as a development admin', false),
  IDENTITY_TTL_SECONDS: env.int('lifetime of a gateway identity token in seconds', 60, 5),
};

export interface IdentityConfig {
  secret: Uint8Array;
  /** True when running on DEV_GATEWAY_SIGNING_SECRET (never in production). */
  developmentSecret: boolean;
  allowUnsignedDev: boolean;
  ttlSeconds: number;
}

/** Throws ConfigError listing every problem; production refuses the development secret and switch. */
export function loadIdentityConfig(source: Record<string, string | undefined> = process.env): IdentityConfig {
  const c = loadConfig(identitySpec, source);
  const production = c.NODE_ENV === 'production';
  const problems: string[] = [];
  if (production && c.ALLOW_UNSIGNED_DEV) {
    problems.push('ALLOW_UNSIGNED_DEV: must not be true when NODE_ENV=production (subgraphs would trust unsigned requests)');
  }
  if (production && c.GATEWAY_SIGNING_SECRET === undefined) {
    problems.push('GATEWAY_SIGNING_SECRET: required when NODE_ENV=production (set the same secret on the gateway and every subgraph)');
  }
  if (production && c.GATEWAY_SIGNING_SECRET === DEV_GATEWAY_SIGNING_SECRET) {
    problems.push('GATEWAY_SIGNING_SECRET: is the public development secret; set your own when NODE_ENV=production');
  }
  const secret = c.GATEWAY_SIGNING_SECRET ?? DEV_GATEWAY_SIGNING_SECRET;
  if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    problems.push(`GATEWAY_SIGNING_SECRET: must be at least ${MIN_SECRET_BYTES} bytes, got ${Buffer.byteLength(secret)}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    secret: new TextEncoder().encode(secret),
    developmentSecret: secret === DEV_GATEWAY_SIGNING_SECRET,
    allowUnsignedDev: c.ALLOW_UNSIGNED_DEV,
    ttlSeconds: c.IDENTITY_TTL_SECONDS,
  };
}

/**
 * Who the caller is, as the gateway established it. `service` is the gateway acting for itself
 * (e.g. verifying an API key before it knows the caller); `anonymous` carries no tenant.
 */
export interface IdentityClaims {
  kind: 'user' | 'apiKey' | 'anonymous' | 'service';
  subject: string | null;
  tenantId: string | null;
  scopes: readonly string[];
  /**
   * Set when the caller is an agent (an agent credential, or a JWT with the agent claim): the
   * agent it acts as, and the only one it may act as.
   */
  agentId?: string | null;
}

export interface RequestIdentity extends IdentityClaims {
  requestId: string | null;
  /** The subgraph the token was issued for. */
  audience: string;
  expiresAt: Date;
  /** False only for the development identity ALLOW_UNSIGNED_DEV stands in with. */
  signed: boolean;
}

export type IdentityFailure = 'missing' | 'malformed' | 'bad signature' | 'expired' | 'wrong audience' | 'invalid';

/** A subgraph request without a valid gateway identity: answered with HTTP 401, UNAUTHENTICATED. */
export class IdentityError extends Error {
  readonly status = 401;
  constructor(readonly reason: IdentityFailure) {
    super(`Gateway identity token ${reason === 'missing' ? 'missing' : `rejected: ${reason}`}`);
    this.name = 'IdentityError';
  }

  /** What a subgraph's context function throws: Apollo answers with its status and extensions. */
  toGraphQLError(): GraphQLError {
    return new GraphQLError(this.reason === 'missing' ? 'This service only accepts requests through the gateway' : `Invalid gateway identity: ${this.reason}`, {
      extensions: { code: 'UNAUTHENTICATED', reason: this.reason, http: { status: 401 } },
    });
  }
}

export interface IdentityService {
  /** A token for one request to one subgraph (the audience). */
  signIdentity(claims: IdentityClaims, audience: string, requestId?: string | null): Promise<string>;
  /**
   * The identity in a header value (the token, or `Bearer <token>`). A missing header yields the
   * development identity when ALLOW_UNSIGNED_DEV is on; a present but invalid one never passes.
   */
  verifyIdentity(headerValue: string | null | undefined, audience: string): Promise<RequestIdentity>;
}

export function createIdentityService(config: IdentityConfig, clock: () => number = Date.now): IdentityService {
  // Signed and checked with node:crypto (runtime/hs256.ts): one per subgraph request on both
  // sides, where jose's WebCrypto path cost about a tenth of a lookup's CPU. jose still decides
  // every token the fast path does not vouch for, so refusals and their reasons are its own.
  const key = hmacKey(config.secret);
  const header = encodeSegment({ alg: 'HS256', typ: TOKEN_TYPE });
  return {
    async signIdentity(claims, audience, requestId = null) {
      const nowSeconds = Math.floor(clock() / 1000);
      // The claims in the order jose's SignJWT wrote them, so the tokens are the same bytes.
      const payload: JWTPayload = { knd: claims.kind, ten: claims.tenantId, scp: [...claims.scopes] };
      if (requestId) payload.rid = requestId;
      payload.iss = ISSUER;
      payload.aud = audience;
      payload.iat = nowSeconds;
      payload.exp = nowSeconds + config.ttlSeconds;
      if (claims.subject !== null) payload.sub = claims.subject;
      if (claims.agentId) payload.agt = claims.agentId;
      return signHs256(key, header, payload);
    },

    async verifyIdentity(headerValue, audience) {
      const token = headerValue?.replace(/^Bearer\s+/i, '').trim();
      if (!token) {
        if (config.allowUnsignedDev) return developmentIdentity(audience, DEFAULT_TENANT, new Date(clock() + config.ttlSeconds * 1000));
        throw new IdentityError('missing');
      }
      const now = clock();
      // The fast path checked iss, aud, typ, exp and iat as jose would, so the claims have jose's shape.
      let payload = verifyHs256(key, token, {
        issuer: ISSUER,
        audience,
        typ: TOKEN_TYPE,
        requiredClaims: REQUIRED_CLAIMS,
        clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
        nowSeconds: Math.floor(now / 1000),
      }) as JWTPayload | undefined;
      if (!payload) {
        try {
          ({ payload } = await jwtVerify(token, config.secret, {
            algorithms: ['HS256'],
            issuer: ISSUER,
            audience,
            typ: TOKEN_TYPE,
            requiredClaims: [...REQUIRED_CLAIMS],
            clockTolerance: CLOCK_TOLERANCE_SECONDS,
            currentDate: new Date(now),
          }));
        } catch (err) {
          throw new IdentityError(failureOf(err));
        }
      }
      const { kind, subject, tenantId, scopes, agentId } = claimsOf(payload);
      // Written out rather than spread: a spread plus more properties costs microseconds on Node 20.
      return {
        kind,
        subject,
        tenantId,
        scopes,
        agentId,
        requestId: typeof payload.rid === 'string' ? payload.rid : null,
        audience,
        expiresAt: new Date((payload.exp ?? 0) * 1000),
        signed: true,
      };
    },
  };
}

function failureOf(err: unknown): IdentityFailure {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return err.claim === 'aud' ? 'wrong audience' : 'invalid';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed';
  return 'invalid';
}

const KINDS: readonly IdentityClaims['kind'][] = ['user', 'apiKey', 'anonymous', 'service'];

/** The claims were signed by the gateway, so a wrong shape is a bug or a forgery: refused either way. */
function claimsOf(payload: JWTPayload): IdentityClaims {
  const kind = KINDS.find((k) => k === payload.knd);
  const tenant = payload.ten;
  const scopes = payload.scp;
  const agent = payload.agt;
  if (!kind || (tenant !== null && typeof tenant !== 'string') || !Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string')) {
    throw new IdentityError('malformed');
  }
  if (agent !== undefined && typeof agent !== 'string') throw new IdentityError('malformed');
  return { kind, subject: payload.sub ?? null, tenantId: tenant, scopes, agentId: agent ?? null };
}

/** What ALLOW_UNSIGNED_DEV stands in with: an admin of the tenant with every platform scope. */
export function developmentIdentity(audience: string, tenantId: string = DEFAULT_TENANT, expiresAt = new Date(Date.now() + 60_000)): RequestIdentity {
  return { kind: 'user', subject: 'development', tenantId, scopes: [...PLATFORM_SCOPES], agentId: null, requestId: null, audience, expiresAt, signed: false };
}

/**
 * Defence in depth in a resolver: the gateway already removed what the caller may not see, this
 * refuses it again from the identity the subgraph verified. `anyOf` lists alternatives, each a
 * set of scopes that must all be held (the shape of @requiresScopes).
 */
export function requireScopes(identity: RequestIdentity | null, anyOf: readonly (readonly string[])[]): RequestIdentity & { tenantId: string } {
  const caller = requireTenant(identity);
  const held = new Set(caller.scopes);
  if (!anyOf.some((all) => all.every((s) => held.has(s)))) {
    throw new GraphQLError(`Requires scope ${anyOf.map((all) => all.join(' and ')).join(' or ')}`, {
      extensions: { code: 'FORBIDDEN', requiredScopes: anyOf.map((all) => [...all]) },
    });
  }
  return caller;
}

/** Any identity the gateway signed (or the development one): the request came through the gateway. */
export function requireIdentity(identity: RequestIdentity | null): RequestIdentity {
  if (identity === null) throw new GraphQLError('Authentication required', { extensions: { code: 'UNAUTHENTICATED' } });
  return identity;
}

/** The caller acts in a tenant: anonymous and service identities do not. */
export function requireTenant(identity: RequestIdentity | null): RequestIdentity & { tenantId: string } {
  if (identity === null || identity.kind === 'anonymous' || identity.tenantId === null) {
    throw new GraphQLError('Authentication required', { extensions: { code: 'UNAUTHENTICATED' } });
  }
  return identity as RequestIdentity & { tenantId: string };
}
