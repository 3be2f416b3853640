// Verifies user tokens (`Authorization: Bearer <JWT>`): HS256 against AUTH_JWT_SECRET, or the
// asymmetric algorithms configured for AUTH_JWKS_URL against the provider's keys. The algorithm is
// chosen by the key source, never trusted from the token: `alg: none`, an HS token when only JWKS
// is configured, or an RS token signed with the HS secret as "public key" are all refused.
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import { hmacKey, verifyHs256 } from '../../runtime/hs256.ts';
import type { AuthConfig } from './config.ts';
import { AGENT_ID_PATTERN, AuthError, scopesFromClaims, TENANT_ID_PATTERN, type AuthenticatedPrincipal, type AuthFailure } from './principal.ts';

export interface JwtVerifier {
  /** The principal the token names; throws AuthError with a reason safe to show the caller. */
  verify(token: string, now?: Date): Promise<AuthenticatedPrincipal>;
}

/**
 * Tokens verified recently, by token string. A client sends the same token with every request
 * until it expires, and a signature check (HMAC with jose, or RSA/ECDSA) costs far more than a
 * lookup. A hit gives what verifying again would: the time claims (exp, nbf) are checked again at
 * every use, with the same clock tolerance; HS256 entries hold for the process's lifetime (the
 * secret cannot change without a restart); a JWKS entry holds only while the provider's key set
 * jose would use right now resolves the token's kid to the very key that verified it, so a key
 * rotated out, a refetched key set or one past AUTH_JWKS_CACHE_MS (jose refetches it) sends the
 * token through full verification again. Refusals are never cached. The trade-off: at most
 * MAX_CACHED tokens and their principals stay in memory (a few MB at most).
 */
const MAX_CACHED = 10_000;

interface Verified {
  principal: AuthenticatedPrincipal;
  exp: number;
  nbf: number | undefined;
  /** JWKS tokens: the header to resolve the key with and the key that verified the signature. */
  jwks?: { header: JWSHeaderParameters; key: unknown };
}

export function createJwtVerifier(config: AuthConfig): JwtVerifier {
  const keySet = config.jwks
    ? createRemoteJWKSet(new URL(config.jwks.url), {
        cooldownDuration: config.jwks.cooldownMs,
        cacheMaxAge: config.jwks.cacheMaxAgeMs,
        timeoutDuration: config.jwks.timeoutMs,
      })
    : null;
  const asymmetric: readonly string[] = config.jwks?.algorithms ?? [];
  // HS256 through node:crypto (runtime/hs256.ts); jose decides whatever that fast path does not vouch for.
  const secretKey = config.secret ? hmacKey(config.secret) : null;
  const verified = new Map<string, Verified>();

  function remember(token: string, entry: Verified): void {
    if (verified.size >= MAX_CACHED) verified.delete(verified.keys().next().value as string);
    verified.set(token, entry);
  }

  /** The cached principal when verifying again now would give it; undefined to verify in full. */
  async function recall(token: string, now: Date | undefined): Promise<AuthenticatedPrincipal | undefined> {
    const entry = verified.get(token);
    if (!entry) return undefined;
    const seconds = Math.floor((now ?? new Date()).getTime() / 1000);
    const tolerance = config.clockToleranceSeconds;
    // Outside its time window, jose says why (expired, not yet valid).
    if (entry.exp <= seconds - tolerance || (entry.nbf !== undefined && entry.nbf > seconds + tolerance)) return undefined;
    if (entry.jwks) {
      if (!keySet) return undefined;
      const key = await keySet(entry.jwks.header).catch(() => undefined);
      if (key !== entry.jwks.key) {
        verified.delete(token);
        return undefined;
      }
    }
    return entry.principal;
  }

  return {
    async verify(token, now) {
      const cached = await recall(token, now);
      if (cached) return cached;
      let header: JWSHeaderParameters;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw new AuthError('malformed', 'not a JWT');
      }
      const alg: unknown = header.alg;
      const options: JWTVerifyOptions = {
        issuer: config.issuer,
        audience: config.audience,
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ['exp', 'sub'],
        ...(now ? { currentDate: now } : {}),
      };
      let payload: JWTPayload;
      let key: unknown;
      try {
        if (alg === 'HS256' && config.secret && secretKey) {
          const fast = verifyHs256(secretKey, token, {
            issuer: config.issuer,
            audience: config.audience,
            requiredClaims: ['exp', 'sub'],
            clockToleranceSeconds: config.clockToleranceSeconds,
            nowSeconds: Math.floor((now ?? new Date()).getTime() / 1000),
          });
          // The fast path checked iss, aud, exp, nbf and iat as jose would, so the claims have jose's shape.
          payload = (fast as JWTPayload | undefined) ?? (await jwtVerify(token, config.secret, { ...options, algorithms: ['HS256'] })).payload;
        } else if (typeof alg === 'string' && keySet && asymmetric.includes(alg)) {
          ({ payload, key } = await jwtVerify(token, keySet, { ...options, algorithms: [...asymmetric] }));
        } else {
          throw new AuthError('unsupported alg', typeof alg === 'string' ? `"${alg.slice(0, 20)}" is not accepted` : undefined);
        }
      } catch (err) {
        throw err instanceof AuthError ? err : toAuthError(err);
      }
      const principal = principalOf(payload, config.tenantClaims, config.agentClaim);
      // exp is required, so present; a JWKS token is only remembered with the key that verified it.
      if (typeof payload.exp === 'number' && (alg === 'HS256' || key !== undefined)) {
        remember(token, { principal, exp: payload.exp, nbf: payload.nbf, ...(alg === 'HS256' ? {} : { jwks: { header, key } }) });
      }
      return principal;
    },
  };
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof joseErrors.JWTExpired) return new AuthError('expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const byClaim: Record<string, AuthFailure> = { nbf: 'not yet valid', iss: 'wrong issuer', aud: 'wrong audience' };
    const reason = byClaim[err.claim];
    if (reason) return new AuthError(reason);
    return new AuthError('malformed', err.reason === 'missing' ? `missing "${err.claim}" claim` : `invalid "${err.claim}" claim`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new AuthError('bad signature');
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return new AuthError('unsupported alg');
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return new AuthError('unknown key');
  // The provider's key endpoint failed, timed out or answered garbage (fetch errors are not
  // JOSEErrors): not the caller's fault, but the token cannot be checked, so it is not accepted.
  // jose reports a non-200 or non-JSON key set answer as its generic error.
  if (
    !(err instanceof joseErrors.JOSEError) ||
    err instanceof joseErrors.JWKSTimeout ||
    err instanceof joseErrors.JWKSInvalid ||
    err.code === 'ERR_JOSE_GENERIC'
  ) {
    return new AuthError('keys unavailable');
  }
  return new AuthError('malformed');
}

function principalOf(payload: JWTPayload, tenantClaims: readonly string[], agentClaim: string): AuthenticatedPrincipal {
  const claims = payload as Record<string, unknown>;
  const subject = payload.sub;
  if (typeof subject !== 'string' || subject === '' || subject.length > 256) throw new AuthError('malformed', 'invalid "sub" claim');
  const tenantClaim = tenantClaims.find((name) => claims[name] !== undefined);
  if (tenantClaim === undefined) throw new AuthError('malformed', `no tenant claim (${tenantClaims.join(' or ')})`);
  const tenantId = claims[tenantClaim];
  if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId)) throw new AuthError('malformed', `invalid "${tenantClaim}" claim`);
  // An agent's token: its holder acts as that agent and no other (the subgraphs enforce it).
  const agentId = claims[agentClaim];
  if (agentId !== undefined && (typeof agentId !== 'string' || !AGENT_ID_PATTERN.test(agentId)))
    throw new AuthError('malformed', `invalid "${agentClaim}" claim (an agent id)`);
  // Frozen: the same object is handed to every request that presents the token (the cache above).
  return Object.freeze({
    kind: 'user',
    subject,
    tenantId,
    scopes: Object.freeze(scopesFromClaims(claims)),
    expiresAt: new Date((payload.exp ?? 0) * 1000),
    ...(agentId === undefined ? {} : { agentId: agentId.toLowerCase() }),
  });
}
