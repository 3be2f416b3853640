// The gateway → subgraph identity token (runtime/identity.ts).
import { ApolloServer, HeaderMap } from '@apollo/server';
import { base64url, SignJWT } from 'jose';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../runtime/config.ts';
import {
  createIdentityService,
  DEV_GATEWAY_SIGNING_SECRET,
  developmentIdentity,
  IdentityError,
  loadIdentityConfig,
  PLATFORM_SCOPES,
  requireIdentity,
  requireScopes,
  type IdentityClaims,
  type RequestIdentity,
} from '../../runtime/identity.ts';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const config = loadIdentityConfig({ NODE_ENV: 'test', GATEWAY_SIGNING_SECRET: SECRET });
const alice: IdentityClaims = { kind: 'user', subject: 'alice', tenantId: 'acme', scopes: ['agents:read', 'tasks:write'] };

async function failure(p: Promise<unknown>): Promise<IdentityError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(IdentityError);
  expect((err as IdentityError).status).toBe(401);
  return err as IdentityError;
}

describe('gateway identity tokens', () => {
  it('carries subject, tenant, scopes and request id to the subgraph it was signed for', async () => {
    const t0 = Date.parse('2026-03-01T12:00:00.000Z');
    const service = createIdentityService(config, () => t0);
    const token = await service.signIdentity(alice, 'agents', 'req-1');
    const identity = await service.verifyIdentity(token, 'agents');
    expect(identity).toEqual({ ...alice, agentId: null, requestId: 'req-1', audience: 'agents', expiresAt: new Date(t0 + 60_000), signed: true });
    // The header may also come as a bearer credential.
    expect(await service.verifyIdentity(`Bearer ${token}`, 'agents')).toEqual(identity);
    // An agent's identity names the agent, and only that one.
    const agent = await service.verifyIdentity(await service.signIdentity({ ...alice, kind: 'apiKey', agentId: 'agt_1' }, 'orchestration'), 'orchestration');
    expect(agent).toMatchObject({ kind: 'apiKey', agentId: 'agt_1', tenantId: 'acme' });
    const anonymous = await service.verifyIdentity(
      await service.signIdentity({ kind: 'service', subject: null, tenantId: null, scopes: [] }, 'governance'),
      'governance',
    );
    expect(anonymous).toMatchObject({ kind: 'service', subject: null, tenantId: null, scopes: [], requestId: null });
  });

  it('refuses an expired token, after the lifetime plus a few seconds of clock skew', async () => {
    let now = Date.parse('2026-03-01T12:00:00.000Z');
    const service = createIdentityService(config, () => now);
    const token = await service.signIdentity(alice, 'agents');
    now += 64_000;
    await expect(service.verifyIdentity(token, 'agents')).resolves.toMatchObject({ subject: 'alice' });
    now += 2_000;
    expect((await failure(service.verifyIdentity(token, 'agents'))).reason).toBe('expired');
  });

  it('refuses a token signed for another subgraph', async () => {
    const service = createIdentityService(config);
    const token = await service.signIdentity(alice, 'agents');
    expect((await failure(service.verifyIdentity(token, 'orchestration'))).reason).toBe('wrong audience');
  });

  it('refuses forged tokens: another secret, edited claims, alg none, a user JWT', async () => {
    const service = createIdentityService(config);
    const forger = createIdentityService(loadIdentityConfig({ NODE_ENV: 'test', GATEWAY_SIGNING_SECRET: 'another-secret-that-is-at-least-32-bytes' }));
    const forged = await forger.signIdentity({ ...alice, scopes: ['admin'] }, 'agents');
    expect((await failure(service.verifyIdentity(forged, 'agents'))).reason).toBe('bad signature');

    const [header, , signature] = (await service.signIdentity(alice, 'agents')).split('.');
    const now = Math.floor(Date.now() / 1000);
    const escalated = base64url.encode(
      JSON.stringify({ knd: 'user', ten: 'other-tenant', scp: ['admin'], sub: 'alice', iss: 'agent-platform-gateway', aud: 'agents', iat: now, exp: now + 60 }),
    );
    expect((await failure(service.verifyIdentity(`${header}.${escalated}.${signature}`, 'agents'))).reason).toBe('bad signature');

    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'gateway-identity+jwt' }))}.${escalated}.`;
    await failure(service.verifyIdentity(none, 'agents'));

    // Signed with the same secret but not an identity token (no typ, no claims of ours).
    const userJwt = await new SignJWT({ ten: 'acme', knd: 'user', scp: ['admin'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('agent-platform-gateway')
      .setAudience('agents')
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode(SECRET));
    await failure(service.verifyIdentity(userJwt, 'agents'));
    expect((await failure(service.verifyIdentity('not.a.token', 'agents'))).reason).toBe('malformed');
  });

  it('refuses a missing token, unless the development switch is on; never a bad one', async () => {
    const strict = createIdentityService(config);
    for (const missing of [undefined, null, '', '  ', 'Bearer ']) expect((await failure(strict.verifyIdentity(missing, 'agents'))).reason).toBe('missing');

    const dev = createIdentityService(loadIdentityConfig({ NODE_ENV: 'development', ALLOW_UNSIGNED_DEV: 'true' }));
    const identity = await dev.verifyIdentity(undefined, 'agents');
    expect(identity).toMatchObject({
      kind: 'user',
      subject: 'development',
      tenantId: 'default',
      scopes: [...PLATFORM_SCOPES],
      audience: 'agents',
      signed: false,
    });
    expect((await failure(dev.verifyIdentity('garbage.token.here', 'agents'))).reason).toBe('malformed');
    const foreign = await createIdentityService(config).signIdentity(alice, 'agents');
    expect((await failure(dev.verifyIdentity(foreign, 'agents'))).reason).toBe('bad signature');
  });

  it('answers a subgraph request without a valid token with HTTP 401 and UNAUTHENTICATED', async () => {
    const service = createIdentityService(config);
    const apollo = new ApolloServer<{ identity: RequestIdentity }>({
      typeDefs: 'type Query { me: String }',
      resolvers: { Query: { me: (_p, _a, ctx: { identity: RequestIdentity }) => ctx.identity.subject } },
    });
    await apollo.start();
    const ask = async (token?: string) => {
      const headers = new HeaderMap([['content-type', 'application/json']]);
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method: 'POST', headers, search: '', body: { query: '{ me }' } },
        context: async () => {
          try {
            return { identity: await service.verifyIdentity(token, 'agents') };
          } catch (err) {
            throw err instanceof IdentityError ? err.toGraphQLError() : err;
          }
        },
      });
      return {
        status: response.status ?? 200,
        body: JSON.parse(response.body.kind === 'complete' ? response.body.string : '{}') as {
          data?: unknown;
          errors?: { extensions: Record<string, unknown> }[];
        },
      };
    };
    try {
      const denied = await ask();
      expect(denied.status).toBe(401);
      expect(denied.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'missing' });
      const allowed = await ask(await service.signIdentity(alice, 'agents'));
      expect(allowed).toEqual({ status: 200, body: { data: { me: 'alice' } } });
    } finally {
      await apollo.stop();
    }
  });
});

describe('identity configuration', () => {
  it('runs on the development secret outside production', () => {
    const dev = loadIdentityConfig({});
    expect(dev.developmentSecret).toBe(true);
    expect(new TextDecoder().decode(dev.secret)).toBe(DEV_GATEWAY_SIGNING_SECRET);
    expect(dev.allowUnsignedDev).toBe(false);
    expect(dev.ttlSeconds).toBe(60);
  });

  it('refuses, in production, the development switch, a missing secret and the development secret', () => {
    const problems = (source: Record<string, string>) => {
      try {
        loadIdentityConfig(source);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ NODE_ENV: 'production', ALLOW_UNSIGNED_DEV: 'true' })).toEqual([
      expect.stringContaining('ALLOW_UNSIGNED_DEV: must not be true when NODE_ENV=production'),
      expect.stringContaining('GATEWAY_SIGNING_SECRET: required when NODE_ENV=production'),
    ]);
    expect(problems({ NODE_ENV: 'production', GATEWAY_SIGNING_SECRET: DEV_GATEWAY_SIGNING_SECRET })).toEqual([
      expect.stringContaining('public development secret'),
    ]);
    expect(problems({ NODE_ENV: 'development', GATEWAY_SIGNING_SECRET: 'short' })).toEqual([expect.stringContaining('at least 32 bytes')]);
    expect(problems({ NODE_ENV: 'production', GATEWAY_SIGNING_SECRET: SECRET })).toEqual([]);
    expect(loadIdentityConfig({ NODE_ENV: 'development', ALLOW_UNSIGNED_DEV: 'true' }).allowUnsignedDev).toBe(true);
  });
});

describe('scope checks in resolvers', () => {
  const identity = (scopes: string[]): RequestIdentity => ({ ...alice, scopes, requestId: null, audience: 'agents', expiresAt: new Date(), signed: true });
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'allowed';
    } catch (err) {
      expect(err).toBeInstanceOf(GraphQLError);
      return (err as GraphQLError).extensions.code;
    }
  };

  it('allows any alternative fully held, refuses with FORBIDDEN otherwise, UNAUTHENTICATED without a tenant identity', () => {
    expect(code(() => requireScopes(identity(['admin']), [['admin']]))).toBe('allowed');
    expect(code(() => requireScopes(identity(['tasks:read']), [['tasks:read', 'tasks:write'], ['admin']]))).toBe('FORBIDDEN');
    expect(code(() => requireScopes(identity(['tasks:read', 'tasks:write']), [['tasks:read', 'tasks:write'], ['admin']]))).toBe('allowed');
    expect(code(() => requireScopes(null, [['admin']]))).toBe('UNAUTHENTICATED');
    expect(code(() => requireScopes({ ...identity(['admin']), kind: 'anonymous', tenantId: null }, [['admin']]))).toBe('UNAUTHENTICATED');
    expect(code(() => requireScopes({ ...identity(['admin']), kind: 'service', tenantId: null }, [['admin']]))).toBe('UNAUTHENTICATED');
    expect(code(() => requireIdentity(null))).toBe('UNAUTHENTICATED');
    expect(code(() => requireIdentity(developmentIdentity('agents')))).toBe('allowed');
  });
});
