// User token verification (gateway/auth/jwt.ts): HS256 in development, JWKS (RS256/ES256) in
// production, with a real JWKS endpoint served over HTTP for caching and key rotation.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_AUDIENCE, DEV_ISSUER, DEV_JWT_SECRET, loadAuthConfig } from '../../gateway/auth/config.ts';
import { createJwtVerifier } from '../../gateway/auth/jwt.ts';
import { AuthError, type AuthFailure } from '../../gateway/auth/principal.ts';

const secret = new TextEncoder().encode(DEV_JWT_SECRET);
const devConfig = loadAuthConfig({ NODE_ENV: 'development' });
const dev = createJwtVerifier(devConfig);
const nowSeconds = () => Math.floor(Date.now() / 1000);

interface TokenOptions {
  claims?: JWTPayload;
  alg?: string;
  key?: CryptoKey | Uint8Array;
  kid?: string;
  issuer?: string;
  audience?: string;
  subject?: string | null;
  exp?: number | null;
  nbf?: number;
}

async function token(o: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ tenant: 'acme', scope: 'agents:read tasks:write', ...o.claims }).setProtectedHeader({
    alg: o.alg ?? 'HS256',
    ...(o.kid ? { kid: o.kid } : {}),
  });
  jwt
    .setIssuer(o.issuer ?? DEV_ISSUER)
    .setAudience(o.audience ?? DEV_AUDIENCE)
    .setIssuedAt();
  if (o.subject !== null) jwt.setSubject(o.subject ?? 'alice');
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? nowSeconds() + 300);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(o.key ?? secret);
}

async function reason(p: Promise<unknown>): Promise<AuthFailure> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  const auth = err as AuthError;
  // What the caller is told: the reason, never a library's own message.
  const formatted = auth.toGraphQLError();
  expect(formatted.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: auth.reason });
  expect(formatted.message).toMatch(/^Invalid credentials: /);
  return auth.reason;
}

describe('HS256 tokens (development)', () => {
  it('gives the principal: subject, tenant, scopes from every scope claim, expiry', async () => {
    const exp = nowSeconds() + 120;
    const principal = await dev.verify(await token({ exp, claims: { scp: ['admin', 'agents:read'], scopes: 'tasks:read' } }));
    expect(principal).toEqual({
      kind: 'user',
      subject: 'alice',
      tenantId: 'acme',
      scopes: ['agents:read', 'tasks:write', 'tasks:read', 'admin'],
      expiresAt: new Date(exp * 1000),
    });
    // `org` when there is no `tenant`; the configured order decides.
    expect((await dev.verify(await token({ claims: { tenant: undefined, org: 'globex' } }))).tenantId).toBe('globex');
    const orgFirst = createJwtVerifier(loadAuthConfig({ NODE_ENV: 'development', AUTH_TENANT_CLAIMS: 'org,tenant' }));
    expect((await orgFirst.verify(await token({ claims: { org: 'globex' } }))).tenantId).toBe('globex');
    expect((await dev.verify(await token({ claims: { scope: undefined } }))).scopes).toEqual([]);
  });

  it('gives an agent token’s principal its agent (AUTH_AGENT_CLAIM, default agent_id), and refuses a malformed one', async () => {
    const agentId = '7f0c2a4e-1b2c-4d3e-8f90-0123456789ab';
    expect((await dev.verify(await token({ claims: { agent_id: agentId.toUpperCase() } }))).agentId).toBe(agentId);
    expect((await dev.verify(await token())).agentId).toBeUndefined();
    for (const bad of ['not-an-id', 42, [agentId], '']) expect(await reason(dev.verify(await token({ claims: { agent_id: bad } })))).toBe('malformed');
    const custom = createJwtVerifier(loadAuthConfig({ NODE_ENV: 'development', AUTH_AGENT_CLAIM: 'https://example.com/agent' }));
    expect((await custom.verify(await token({ claims: { 'https://example.com/agent': agentId } }))).agentId).toBe(agentId);
    // Under another claim name the default one means nothing.
    expect((await custom.verify(await token({ claims: { agent_id: agentId } }))).agentId).toBeUndefined();
    expect(() => loadAuthConfig({ AUTH_AGENT_CLAIM: 'two words' })).toThrow(/AUTH_AGENT_CLAIM/);
  });

  it('refuses expired and not-yet-valid tokens, allowing a few seconds of clock skew', async () => {
    expect(await reason(dev.verify(await token({ exp: nowSeconds() - 30 })))).toBe('expired');
    expect(await reason(dev.verify(await token({ nbf: nowSeconds() + 600 })))).toBe('not yet valid');
    await expect(dev.verify(await token({ exp: nowSeconds() - 2 }))).resolves.toMatchObject({ subject: 'alice' });
    await expect(dev.verify(await token({ nbf: nowSeconds() + 2 }))).resolves.toMatchObject({ subject: 'alice' });
  });

  it('refuses the wrong issuer and the wrong audience', async () => {
    expect(await reason(dev.verify(await token({ issuer: 'https://evil.example' })))).toBe('wrong issuer');
    expect(await reason(dev.verify(await token({ audience: 'another-api' })))).toBe('wrong audience');
  });

  it('refuses tampered and foreign-signed tokens', async () => {
    const good = await token();
    const [header, , signature] = good.split('.');
    const escalated = base64url.encode(
      JSON.stringify({ sub: 'alice', tenant: 'other', scope: 'admin', iss: DEV_ISSUER, aud: DEV_AUDIENCE, exp: nowSeconds() + 300 }),
    );
    expect(await reason(dev.verify(`${header}.${escalated}.${signature}`))).toBe('bad signature');
    expect(await reason(dev.verify(await token({ key: new TextEncoder().encode('someone-elses-secret-of-32-bytes-or-more') })))).toBe('bad signature');
  });

  it('refuses alg none and algorithms not configured', async () => {
    const payload = base64url.encode(
      JSON.stringify({ sub: 'alice', tenant: 'acme', scope: 'admin', iss: DEV_ISSUER, aud: DEV_AUDIENCE, exp: nowSeconds() + 300 }),
    );
    for (const alg of ['none', 'None', 'NONE']) {
      expect(await reason(dev.verify(`${base64url.encode(JSON.stringify({ alg, typ: 'JWT' }))}.${payload}.`))).toBe('unsupported alg');
    }
    expect(await reason(dev.verify(await token({ alg: 'HS512' })))).toBe('unsupported alg');
    const { privateKey } = await generateKeyPair('RS256');
    // RS256 is only accepted from JWKS keys, and none are configured here.
    expect(await reason(dev.verify(await token({ alg: 'RS256', key: privateKey })))).toBe('unsupported alg');
  });

  it('remembers a verified token, but checks its time window again at every use', async () => {
    const now = nowSeconds();
    const t = await token({ exp: now + 60, nbf: now - 10 });
    const first = await dev.verify(t);
    // The same principal object: the signature was not checked again.
    expect(await dev.verify(t)).toBe(first);
    expect(await reason(dev.verify(t, new Date((now + 66) * 1000)))).toBe('expired');
    expect(await reason(dev.verify(t, new Date((now - 16) * 1000)))).toBe('not yet valid');
    expect(await dev.verify(t, new Date((now + 64) * 1000))).toBe(first);
    // Another verifier (another secret) shares nothing.
    const other = createJwtVerifier(loadAuthConfig({ NODE_ENV: 'development', AUTH_JWT_SECRET: 'another-secret-that-is-at-least-32-bytes' }));
    expect(await reason(other.verify(t))).toBe('bad signature');
  });

  it('refuses malformed tokens and tokens missing what the platform needs', async () => {
    expect(await reason(dev.verify('not-a-jwt'))).toBe('malformed');
    expect(await reason(dev.verify('a.b.c'))).toBe('malformed');
    expect(await reason(dev.verify(await token({ exp: null })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ subject: null })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ claims: { tenant: undefined } })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ claims: { tenant: 'a b/../c' } })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ claims: { tenant: 42 } })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ claims: { scope: ['admin'], scp: 7 } })))).toBe('malformed');
    expect(await reason(dev.verify(await token({ claims: { scopes: ['ok', 3] } })))).toBe('malformed');
  });
});

describe('JWKS tokens (production)', () => {
  let server: Server;
  let url: string;
  let keys: JWK[] = [];
  let fetches = 0;
  let failing = false;
  const pairs: Record<string, { privateKey: CryptoKey; jwk: JWK }> = {};

  beforeAll(async () => {
    for (const [kid, alg] of [
      ['rsa-1', 'RS256'],
      ['rsa-2', 'RS256'],
      ['ec-1', 'ES256'],
    ] as const) {
      const { privateKey, publicKey } = await generateKeyPair(alg);
      pairs[kid] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
    }
    server = createServer((_req, res) => {
      fetches += 1;
      if (failing) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const production = (extra: Record<string, string> = {}) =>
    createJwtVerifier(
      loadAuthConfig({
        NODE_ENV: 'production',
        AUTH_JWKS_URL: url,
        AUTH_ISSUER: 'https://idp.example',
        AUTH_AUDIENCE: 'agent-platform',
        AUTH_JWKS_COOLDOWN_MS: '0',
        ...extra,
      }),
    );
  const signed = (kid: string, o: TokenOptions = {}) =>
    token({ alg: pairs[kid]!.jwk.alg, key: pairs[kid]!.privateKey, kid, issuer: 'https://idp.example', audience: 'agent-platform', ...o });

  it('verifies RS256 and ES256 tokens against the provider’s keys, fetching them once', async () => {
    keys = [pairs['rsa-1']!.jwk, pairs['ec-1']!.jwk];
    fetches = 0;
    const verifier = production();
    expect(await verifier.verify(await signed('rsa-1'))).toMatchObject({ subject: 'alice', tenantId: 'acme' });
    expect(await verifier.verify(await signed('ec-1'))).toMatchObject({ subject: 'alice' });
    expect(await verifier.verify(await signed('rsa-1', { subject: 'bob' }))).toMatchObject({ subject: 'bob' });
    expect(fetches).toBe(1);
  });

  it('picks up a rotated key when a token names a new kid, and drops a retired one', async () => {
    keys = [pairs['rsa-1']!.jwk];
    fetches = 0;
    const verifier = production();
    await verifier.verify(await signed('rsa-1'));
    const fresh = await signed('rsa-2');
    expect(await reason(verifier.verify(fresh))).toBe('unknown key');

    // The provider rotates: rsa-2 in, rsa-1 out.
    keys = [pairs['rsa-2']!.jwk];
    expect(await verifier.verify(fresh)).toMatchObject({ subject: 'alice' });
    expect(fetches).toBe(3);
    expect(await reason(verifier.verify(await signed('rsa-1')))).toBe('unknown key');
  });

  it('remembers a verified token only while the key set resolves its kid to the same key', async () => {
    keys = [pairs['rsa-1']!.jwk];
    fetches = 0;
    const verifier = production();
    const t = await signed('rsa-1');
    const first = await verifier.verify(t);
    expect(await verifier.verify(t)).toBe(first);
    expect(fetches).toBe(1);

    // Keys are trusted for no time at all: each use refetches them, and rsa-1 is gone.
    const strict = production({ AUTH_JWKS_CACHE_MS: '0' });
    expect(await strict.verify(t)).toMatchObject({ subject: 'alice' });
    keys = [pairs['rsa-2']!.jwk];
    expect(await reason(strict.verify(t))).toBe('unknown key');
  });

  it('does not refetch for unknown kids within the cooldown', async () => {
    keys = [pairs['rsa-1']!.jwk];
    fetches = 0;
    const verifier = production({ AUTH_JWKS_COOLDOWN_MS: '60000' });
    await verifier.verify(await signed('rsa-1'));
    for (let i = 0; i < 3; i++) expect(await reason(verifier.verify(await signed('rsa-2')))).toBe('unknown key');
    expect(fetches).toBe(1);
  });

  it('refuses HS256 tokens when only JWKS is configured, even signed with a JWKS public key as secret', async () => {
    keys = [pairs['rsa-1']!.jwk];
    const verifier = production();
    expect(await reason(verifier.verify(await token({ issuer: 'https://idp.example', audience: 'agent-platform' })))).toBe('unsupported alg');
    const publicKeyAsSecret = new TextEncoder().encode(JSON.stringify(pairs['rsa-1']!.jwk));
    expect(
      await reason(verifier.verify(await token({ key: publicKeyAsSecret, kid: 'rsa-1', issuer: 'https://idp.example', audience: 'agent-platform' }))),
    ).toBe('unsupported alg');
    // ES256 is not accepted when only RS256 is configured.
    keys = [pairs['ec-1']!.jwk];
    expect(await reason(production({ AUTH_JWKS_ALGORITHMS: 'RS256' }).verify(await signed('ec-1')))).toBe('unsupported alg');
  });

  it('says the keys are unavailable (503) when the provider fails, and recovers', async () => {
    keys = [pairs['rsa-1']!.jwk];
    failing = true;
    const verifier = production();
    const err = await verifier.verify(await signed('rsa-1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toMatchObject({ reason: 'keys unavailable', status: 503 });
    failing = false;
    expect(await verifier.verify(await signed('rsa-1'))).toMatchObject({ subject: 'alice' });
  });

  it('checks issuer and audience for JWKS tokens too', async () => {
    keys = [pairs['rsa-1']!.jwk];
    expect(await reason(production().verify(await signed('rsa-1', { issuer: DEV_ISSUER })))).toBe('wrong issuer');
    expect(await reason(production().verify(await signed('rsa-1', { audience: 'another-api' })))).toBe('wrong audience');
  });
});
