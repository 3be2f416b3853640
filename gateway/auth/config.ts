// How the gateway authenticates callers, from the environment. Development runs on a public
// HS256 secret and fixed issuer/audience so `npm run token` works on a fresh checkout; production
// refuses to start with that secret, or without its own issuer, audience and key source.
import { commonSpec, ConfigError, env, loadConfig } from '../../runtime/config.ts';

export const DEV_JWT_SECRET = 'development-only-jwt-secret-for-npm-run-token-never-use-in-production';
export const DEV_ISSUER = 'agent-platform-dev';
export const DEV_AUDIENCE = 'agent-platform';

const MIN_SECRET_BYTES = 32;
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

function list<T extends string>(doc: string, def: T[], allowed?: readonly T[]) {
  return {
    doc,
    default: def,
    parse(raw: string): T[] {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (items.length === 0) throw new Error('expected a comma-separated list with at least one item');
      const bad = allowed ? items.filter((i) => !(allowed as readonly string[]).includes(i)) : items.filter((i) => !/^[\w.:-]+$/.test(i));
      if (bad.length > 0) throw new Error(`unexpected ${bad.map((b) => `"${b}"`).join(', ')}${allowed ? ` (allowed: ${allowed.join(', ')})` : ''}`);
      return [...new Set(items)] as T[];
    },
  };
}

export const authSpec = {
  NODE_ENV: commonSpec.NODE_ENV,
  AUTH_JWT_SECRET: env.optionalString(
    `HS256 secret (at least ${MIN_SECRET_BYTES} bytes) user tokens are signed with; a public development secret when unset outside production`,
  ),
  AUTH_JWKS_URL: env.url(
    'JWKS endpoint of the identity provider, for RS256/ES256 tokens; keys are cached and rotated keys fetched when a token names a new kid',
    ['https', 'http'],
  ),
  AUTH_JWKS_ALGORITHMS: list<AsymmetricAlgorithm>('algorithms accepted from the JWKS keys', ['RS256', 'ES256'], ASYMMETRIC_ALGORITHMS),
  AUTH_ISSUER: env.optionalString(`required "iss" of user tokens; ${DEV_ISSUER} outside production when unset`),
  AUTH_AUDIENCE: env.optionalString(`required "aud" of user tokens; ${DEV_AUDIENCE} outside production when unset`),
  AUTH_TENANT_CLAIMS: list<string>('claims naming the tenant, first present wins', ['tenant', 'org']),
  AUTH_AGENT_CLAIM: env.string('claim naming the agent a token acts as (an agent id); tokens without it act for no agent', 'agent_id'),
  AUTH_CLOCK_TOLERANCE_SECONDS: env.int('clock skew allowed when checking exp and nbf', 5, 0),
  AUTH_JWKS_COOLDOWN_MS: env.int('least time between two JWKS fetches caused by unknown key ids', 30_000, 0),
  AUTH_JWKS_CACHE_MS: env.int('how long fetched JWKS keys are trusted before a refetch', 600_000, 0),
  AUTH_JWKS_TIMEOUT_MS: env.int('longest a JWKS fetch may take', 5_000, 1),
};

export interface AuthConfig {
  production: boolean;
  /** The HS256 key, or null when only JWKS tokens are accepted. */
  secret: Uint8Array | null;
  developmentSecret: boolean;
  jwks: { url: string; algorithms: AsymmetricAlgorithm[]; cooldownMs: number; cacheMaxAgeMs: number; timeoutMs: number } | null;
  issuer: string;
  audience: string;
  tenantClaims: string[];
  /** The claim whose value (an agent id) makes the token's holder act as that agent. */
  agentClaim: string;
  clockToleranceSeconds: number;
}

export function loadAuthConfig(source: Record<string, string | undefined> = process.env): AuthConfig {
  const c = loadConfig(authSpec, source);
  const production = c.NODE_ENV === 'production';
  const problems: string[] = [];
  if (production) {
    if (c.AUTH_JWT_SECRET === DEV_JWT_SECRET)
      problems.push('AUTH_JWT_SECRET: is the public development secret; set your own (or use AUTH_JWKS_URL) when NODE_ENV=production');
    if (c.AUTH_JWT_SECRET === undefined && c.AUTH_JWKS_URL === undefined)
      problems.push('AUTH_JWKS_URL: required when NODE_ENV=production (or AUTH_JWT_SECRET with your own secret)');
    if (c.AUTH_ISSUER === undefined) problems.push('AUTH_ISSUER: required when NODE_ENV=production');
    if (c.AUTH_AUDIENCE === undefined) problems.push('AUTH_AUDIENCE: required when NODE_ENV=production');
  }
  const secret = c.AUTH_JWT_SECRET ?? (production ? undefined : DEV_JWT_SECRET);
  if (secret !== undefined && Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    problems.push(`AUTH_JWT_SECRET: must be at least ${MIN_SECRET_BYTES} bytes, got ${Buffer.byteLength(secret)}`);
  }
  // Any claim name without spaces: providers namespace custom claims as URLs (https://example.com/agent).
  if (!/^\S{1,200}$/.test(c.AUTH_AGENT_CLAIM))
    problems.push(`AUTH_AGENT_CLAIM: expected a claim name without spaces, got "${c.AUTH_AGENT_CLAIM.slice(0, 40)}"`);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    production,
    secret: secret === undefined ? null : new TextEncoder().encode(secret),
    developmentSecret: secret === DEV_JWT_SECRET,
    jwks: c.AUTH_JWKS_URL
      ? {
          url: c.AUTH_JWKS_URL,
          algorithms: c.AUTH_JWKS_ALGORITHMS,
          cooldownMs: c.AUTH_JWKS_COOLDOWN_MS,
          cacheMaxAgeMs: c.AUTH_JWKS_CACHE_MS,
          timeoutMs: c.AUTH_JWKS_TIMEOUT_MS,
        }
      : null,
    issuer: c.AUTH_ISSUER ?? DEV_ISSUER,
    audience: c.AUTH_AUDIENCE ?? DEV_AUDIENCE,
    tenantClaims: c.AUTH_TENANT_CLAIMS,
    agentClaim: c.AUTH_AGENT_CLAIM,
    clockToleranceSeconds: c.AUTH_CLOCK_TOLERANCE_SECONDS,
  };
}
