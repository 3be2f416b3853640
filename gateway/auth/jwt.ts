// Verifies user tokens (`Authorization: Bearer <JWT>`): HS256 against AUTH_JWT_SECRET, or the
// asymmetric algorithms configured for AUTH_JWKS_URL against the provider's keys. The algorithm is
// chosen by the key source, never trusted from the token: `alg: none`, an HS token when only JWKS
// is configured, or an RS token signed with the HS secret as "public key" are all refused.
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { AuthConfig } from './config.ts';
import { AuthError, scopesFromClaims, TENANT_ID_PATTERN, type AuthenticatedPrincipal, type AuthFailure } from './principal.ts';

export interface JwtVerifier {
  /** The principal the token names; throws AuthError with a reason safe to show the caller. */
  verify(token: string, now?: Date): Promise<AuthenticatedPrincipal>;
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

  return {
    async verify(token, now) {
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw new AuthError('malformed', 'not a JWT');
      }
      const options: JWTVerifyOptions = {
        issuer: config.issuer,
        audience: config.audience,
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ['exp', 'sub'],
        ...(now ? { currentDate: now } : {}),
      };
      let payload: JWTPayload;
      try {
        if (alg === 'HS256' && config.secret) {
          ({ payload } = await jwtVerify(token, config.secret, { ...options, algorithms: ['HS256'] }));
        } else if (typeof alg === 'string' && keySet && asymmetric.includes(alg)) {
          ({ payload } = await jwtVerify(token, keySet, { ...options, algorithms: [...asymmetric] }));
        } else {
          throw new AuthError('unsupported alg', typeof alg === 'string' ? `"${alg.slice(0, 20)}" is not accepted` : undefined);
        }
      } catch (err) {
        throw err instanceof AuthError ? err : toAuthError(err);
      }
      return principalOf(payload, config.tenantClaims);
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
  if (!(err instanceof joseErrors.JOSEError) || err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || err.code === 'ERR_JOSE_GENERIC') {
    return new AuthError('keys unavailable');
  }
  return new AuthError('malformed');
}

function principalOf(payload: JWTPayload, tenantClaims: readonly string[]): AuthenticatedPrincipal {
  const claims = payload as Record<string, unknown>;
  const subject = payload.sub;
  if (typeof subject !== 'string' || subject === '' || subject.length > 256) throw new AuthError('malformed', 'invalid "sub" claim');
  const tenantClaim = tenantClaims.find((name) => claims[name] !== undefined);
  if (tenantClaim === undefined) throw new AuthError('malformed', `no tenant claim (${tenantClaims.join(' or ')})`);
  const tenantId = claims[tenantClaim];
  if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId)) throw new AuthError('malformed', `invalid "${tenantClaim}" claim`);
  return {
    kind: 'user',
    subject,
    tenantId,
    scopes: scopesFromClaims(claims),
    expiresAt: new Date((payload.exp ?? 0) * 1000),
  };
}
