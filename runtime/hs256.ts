// HS256 JWTs with node:crypto's HMAC, for the tokens checked on every request (the gateway's
// identity tokens, HS256 user tokens). jose does the same through WebCrypto's asynchronous jobs:
// a key import, a job and several promises per token, about 120 µs to sign and 100 µs to verify
// on the benchmark machine, against a few µs here (bench/README.md).
//
// Verification here is a fast path in front of jose, never a replacement: it accepts only tokens
// in the plain form (header of alg, typ, kid; no crit, b64 or other extensions) whose signature
// and claims pass, and answers `undefined` for everything else, valid or not, so the caller asks
// jose, whose error says why. Every check it makes is at least as strict as jose's, so it cannot
// accept a token jose would refuse.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/** Imported once: createHmac with a KeyObject skips copying the secret on every call. */
export function hmacKey(secret: Uint8Array): KeyObject {
  return createSecretKey(secret);
}

/** base64url(JSON) of a header or claims set, as jose encodes them. */
export function encodeSegment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A compact JWS: `${encodedHeader}.${payload}.${HMAC-SHA256}`, byte for byte what jose's SignJWT makes. */
export function signHs256(key: KeyObject, encodedHeader: string, claims: Record<string, unknown>): string {
  const input = `${encodedHeader}.${encodeSegment(claims)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

/** What jose's jwtVerify would be asked to check, for the fast path to check the same. */
export interface ClaimsExpectations {
  issuer: string;
  audience: string;
  /** Claims that must be present (jose's requiredClaims). */
  requiredClaims: readonly string[];
  /** The header's typ, compared as jose does (`JWT` and `application/jwt` are the same); unchecked when absent. */
  typ?: string;
  clockToleranceSeconds: number;
  /** The time to check exp and nbf at, in seconds (jose floors currentDate the same way). */
  nowSeconds: number;
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;
// 32 bytes of HMAC-SHA256, unpadded: anything else (padding, another length) is left to jose.
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const HEADER_PARAMETERS = new Set(['alg', 'typ', 'kid']);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The claims of a token this fast path can vouch for, or undefined when jose must decide (the
 * token may still be valid: an unusual header, a non-canonical encoding).
 */
export function verifyHs256(key: KeyObject, token: string, expect: ClaimsExpectations): Record<string, unknown> | undefined {
  const firstDot = token.indexOf('.');
  const secondDot = token.indexOf('.', firstDot + 1);
  if (firstDot <= 0 || secondDot <= firstDot + 1 || token.indexOf('.', secondDot + 1) !== -1) return undefined;
  const encodedHeader = token.slice(0, firstDot);
  const encodedPayload = token.slice(firstDot + 1, secondDot);
  const signature = token.slice(secondDot + 1);
  // A length of 4n+1 is not base64 (jose's atob refuses it; Buffer would quietly drop a character).
  if (!SIGNATURE.test(signature) || !isSegment(encodedHeader) || !isSegment(encodedPayload)) return undefined;

  const header = decodeObject(encodedHeader);
  if (header?.alg !== 'HS256') return undefined;
  for (const name of Object.keys(header)) if (!HEADER_PARAMETERS.has(name)) return undefined;
  if ((header.typ !== undefined && typeof header.typ !== 'string') || (header.kid !== undefined && typeof header.kid !== 'string')) return undefined;

  const expected = createHmac('sha256', key).update(token.slice(0, secondDot)).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'base64url'))) return undefined;

  const claims = decodeObject(encodedPayload);
  if (!claims || !claimsPass(header, claims, expect)) return undefined;
  return claims;
}

function isSegment(value: string): boolean {
  return value.length % 4 !== 1 && SEGMENT.test(value);
}

/** A JSON object as jose accepts one (isObject: a plain object, not an array or null). */
function decodeObject(segment: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(Buffer.from(segment, 'base64url')));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Object.prototype.toString.call(value) !== '[object Object]') return undefined;
  return value as Record<string, unknown>;
}

function normalizeTyp(value: string): string {
  const lower = value.toLowerCase();
  return value.includes('/') ? lower : `application/${lower}`;
}

/** jose's validateClaimsSet for these options, answering false where it would throw. */
function claimsPass(header: Record<string, unknown>, claims: Record<string, unknown>, expect: ClaimsExpectations): boolean {
  if (expect.typ !== undefined && (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(expect.typ))) return false;
  for (const claim of [...expect.requiredClaims, 'iss', 'aud']) if (!Object.hasOwn(claims, claim)) return false;
  if (claims.iss !== expect.issuer) return false;
  const aud = claims.aud;
  if (!(typeof aud === 'string' ? aud === expect.audience : Array.isArray(aud) && aud.includes(expect.audience))) return false;
  const { nowSeconds: now, clockToleranceSeconds: tolerance } = expect;
  const { nbf, exp, iat } = claims;
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) return false;
  if (exp !== undefined && (typeof exp !== 'number' || exp <= now - tolerance)) return false;
  if (iat !== undefined && typeof iat !== 'number') return false;
  return true;
}
