// Development tokens (scripts/token.ts): what `npm start` prints and `npm run token` mints is
// accepted by the gateway's verifier; nothing is minted with NODE_ENV=production.
import { describe, expect, it } from 'vitest';
import { loadAuthConfig } from '../../gateway/auth/config.ts';
import { createJwtVerifier } from '../../gateway/auth/jwt.ts';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { DevTokenRefused, mintDevToken, parseTtl, UsageError } from '../../scripts/token.ts';
import { runToExit } from '../support/processes.ts';

const verifier = createJwtVerifier(loadAuthConfig({ NODE_ENV: 'development' }));

describe('development tokens', () => {
  it('default to an admin of the demo tenant with every scope, for 12 hours', async () => {
    const principal = await verifier.verify(await mintDevToken({}, { NODE_ENV: 'development' }));
    expect(principal).toMatchObject({ kind: 'user', subject: 'dev-admin@default', tenantId: 'default', scopes: [...PLATFORM_SCOPES] });
    const hours = (principal.expiresAt!.getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(11.9);
    expect(hours).toBeLessThanOrEqual(12);
  });

  it('carry the tenant, scopes, subject and lifetime asked for', async () => {
    const token = await mintDevToken({ tenant: 'acme', scopes: ['agents:read'], subject: 'ci-bot', ttlSeconds: 90 }, {});
    const principal = await verifier.verify(token);
    expect(principal).toMatchObject({ subject: 'ci-bot', tenantId: 'acme', scopes: ['agents:read'] });
    expect(principal.expiresAt!.getTime() - Date.now()).toBeLessThanOrEqual(90_000);
    // Signed with a custom development secret, it is accepted only by a gateway using that secret.
    const custom = { AUTH_JWT_SECRET: 'my-own-development-secret-of-32-bytes!' };
    const other = await mintDevToken({}, custom);
    await expect(verifier.verify(other)).rejects.toMatchObject({ reason: 'bad signature' });
    await expect(createJwtVerifier(loadAuthConfig(custom)).verify(other)).resolves.toMatchObject({ tenantId: 'default' });
  });

  it('with --agent, act as that agent with the agent scopes', async () => {
    const agentId = '7f0c2a4e-1b2c-4d3e-8f90-0123456789ab';
    const principal = await verifier.verify(await mintDevToken({ agent: agentId }, { NODE_ENV: 'development' }));
    expect(principal).toMatchObject({ subject: `agent:${agentId}`, tenantId: 'default', agentId, scopes: [...AGENT_SCOPES] });
    expect((await verifier.verify(await mintDevToken({ agent: agentId, scopes: ['tasks:write'] }, {}))).scopes).toEqual(['tasks:write']);
    await expect(mintDevToken({ agent: 'scout' }, {})).rejects.toBeInstanceOf(UsageError);
  });

  it('are refused with NODE_ENV=production, and refuse unusable tenants and scopes', async () => {
    await expect(mintDevToken({}, { NODE_ENV: 'production', AUTH_JWT_SECRET: 'x'.repeat(40), AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a' })).rejects.toBeInstanceOf(
      DevTokenRefused,
    );
    await expect(mintDevToken({ tenant: 'a b' }, {})).rejects.toBeInstanceOf(UsageError);
    await expect(mintDevToken({ scopes: ['agents:read', 'two words'] }, {})).rejects.toBeInstanceOf(UsageError);
  });

  it('read lifetimes like 90s, 15m, 12h, 7d', () => {
    expect([parseTtl('90'), parseTtl('90s'), parseTtl('15m'), parseTtl('12h'), parseTtl('7d')]).toEqual([90, 90, 900, 43200, 604800]);
    for (const bad of ['0', '1y', '-5m', 'soon', '31d']) expect(() => parseTtl(bad)).toThrow(UsageError);
  });

  it('npm run token prints only the token, and refuses in production', async () => {
    const minted = await runToExit({
      args: ['scripts/token.ts', '--tenant', 'acme', '--scopes', 'tasks:read,tasks:write', '--ttl', '10m'],
      env: { AUTH_JWT_SECRET: '' },
    });
    expect(minted.code).toBe(0);
    expect(minted.output).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(await verifier.verify(minted.output.trim())).toMatchObject({ tenantId: 'acme', scopes: ['tasks:read', 'tasks:write'] });

    const refused = await runToExit({ args: ['scripts/token.ts'], env: { NODE_ENV: 'production' } });
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('Refusing to mint a development token with NODE_ENV=production');
    expect(refused.output).not.toMatch(/eyJ/);
  });
});
