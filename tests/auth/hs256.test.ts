// The node:crypto HS256 fast path (runtime/hs256.ts): the tokens it signs are jose's, byte for
// byte, and it never accepts a token jose would refuse (it answers undefined, and the callers ask jose).
import { createHmac } from 'node:crypto';
import { base64url, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { encodeSegment, hmacKey, signHs256, verifyHs256, type ClaimsExpectations } from '../../runtime/hs256.ts';

const SECRET = new TextEncoder().encode('a-test-secret-that-is-at-least-32-bytes-long');
const key = hmacKey(SECRET);
const NOW = 1_800_000_000;
const expect0: ClaimsExpectations = { issuer: 'issuer', audience: 'api', requiredClaims: ['exp', 'sub'], clockToleranceSeconds: 5, nowSeconds: NOW };

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'alice', iss: 'issuer', aud: 'api', iat: NOW, exp: NOW + 60, ...extra };
}

async function joseAccepts(token: string, e: ClaimsExpectations = expect0): Promise<boolean> {
  return jwtVerify(token, SECRET, {
    algorithms: ['HS256'],
    issuer: e.issuer,
    audience: e.audience,
    requiredClaims: [...e.requiredClaims],
    clockTolerance: e.clockToleranceSeconds,
    currentDate: new Date(e.nowSeconds * 1000),
    ...(e.typ ? { typ: e.typ } : {}),
  }).then(
    () => true,
    () => false,
  );
}

function signSegments(header: string, payload: string): string {
  return `${header}.${payload}.${createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url')}`;
}

/** A token with the given header and claims, signed over exactly these segments. */
function raw(header: unknown, payload: unknown): string {
  return signHs256(key, encodeSegment(header), payload as Record<string, unknown>);
}

describe('HS256 with node:crypto', () => {
  it('signs the same bytes as jose’s SignJWT', async () => {
    const payload = claims({ scp: ['a', 'b'], ten: null });
    const ours = signHs256(key, encodeSegment({ alg: 'HS256', typ: 'JWT' }), payload);
    const jose = await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(SECRET);
    expect(ours).toBe(jose);
    expect(verifyHs256(key, ours, expect0)).toEqual(payload);
  });

  it('vouches for nothing jose refuses, and for the plain valid tokens it accepts', async () => {
    const good = raw({ alg: 'HS256' }, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const cases: Record<string, { token: string; e?: ClaimsExpectations; fast: boolean }> = {
      plain: { token: good, fast: true },
      'with typ and kid': { token: raw({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims()), fast: true },
      'audience in a list': { token: raw({ alg: 'HS256' }, claims({ aud: ['x', 'api'] })), fast: true },
      'expired within the tolerance': { token: raw({ alg: 'HS256' }, claims({ exp: NOW - 4 })), fast: true },
      expired: { token: raw({ alg: 'HS256' }, claims({ exp: NOW - 5 })), fast: false },
      'not yet valid': { token: raw({ alg: 'HS256' }, claims({ nbf: NOW + 6 })), fast: false },
      'nbf within the tolerance': { token: raw({ alg: 'HS256' }, claims({ nbf: NOW + 5 })), fast: true },
      'exp not a number': { token: raw({ alg: 'HS256' }, claims({ exp: String(NOW + 60) })), fast: false },
      'iat not a number': { token: raw({ alg: 'HS256' }, claims({ iat: 'now' })), fast: false },
      'missing sub': { token: raw({ alg: 'HS256' }, { iss: 'issuer', aud: 'api', exp: NOW + 60 }), fast: false },
      'wrong issuer': { token: raw({ alg: 'HS256' }, claims({ iss: 'other' })), fast: false },
      'wrong audience': { token: raw({ alg: 'HS256' }, claims({ aud: ['x'] })), fast: false },
      'claims not an object': { token: raw({ alg: 'HS256' }, [claims()]), fast: false },
      'another secret': { token: signHs256(hmacKey(new TextEncoder().encode('x'.repeat(40))), encodeSegment({ alg: 'HS256' }), claims()), fast: false },
      'edited claims': { token: `${h}.${encodeSegment(claims({ sub: 'mallory' }))}.${s}`, fast: false },
      'alg none': { token: `${encodeSegment({ alg: 'none' })}.${p}.`, fast: false },
      'alg HS512 header': { token: raw({ alg: 'HS512' }, claims()), fast: false },
      // Valid for jose perhaps, but not the plain form: left to jose.
      'crit header': { token: raw({ alg: 'HS256', crit: ['b64'], b64: true }, claims()), fast: false },
      'unknown header parameter': { token: raw({ alg: 'HS256', cty: 'JWT' }, claims()), fast: false },
      'padded signature': { token: `${good}=`, fast: false },
      'four parts': { token: `${good}.x`, fast: false },
      'typ expected and right': { token: raw({ alg: 'HS256', typ: 'a+jwt' }, claims()), e: { ...expect0, typ: 'application/A+JWT' }, fast: true },
      'typ expected and missing': { token: good, e: { ...expect0, typ: 'a+jwt' }, fast: false },
      'invalid UTF-8 in the claims': {
        token: signSegments(encodeSegment({ alg: 'HS256' }), base64url.encode(new Uint8Array([0x7b, 0xff, 0x7d]))),
        fast: false,
      },
    };
    for (const [name, c] of Object.entries(cases)) {
      const fast = verifyHs256(key, c.token, c.e ?? expect0) !== undefined;
      expect({ name, fast }).toEqual({ name, fast: c.fast });
      // What the fast path accepts, jose accepts.
      if (fast) expect({ name, jose: await joseAccepts(c.token, c.e) }).toEqual({ name, jose: true });
    }
    // And what jose refuses here really is refused.
    for (const name of ['expired', 'not yet valid', 'another secret', 'edited claims', 'alg none', 'wrong audience', 'missing sub']) {
      expect({ name, jose: await joseAccepts(cases[name]!.token) }).toEqual({ name, jose: false });
    }
  });
});
