import { describe, expect, it } from 'vitest';
import { DEV_AUDIENCE, DEV_ISSUER, DEV_JWT_SECRET, loadAuthConfig } from '../../gateway/auth/config.ts';
import { ConfigError } from '../../runtime/config.ts';

function problems(source: Record<string, string>): string[] {
  try {
    loadAuthConfig(source);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}

describe('auth configuration', () => {
  it('runs on the development secret, issuer and audience outside production', () => {
    const config = loadAuthConfig({ NODE_ENV: 'development' });
    expect(config).toMatchObject({
      production: false,
      developmentSecret: true,
      jwks: null,
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
      tenantClaims: ['tenant', 'org'],
      clockToleranceSeconds: 5,
    });
    expect(new TextDecoder().decode(config.secret!)).toBe(DEV_JWT_SECRET);
  });

  it('refuses to start in production with the development secret, or without issuer, audience and keys', () => {
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: DEV_JWT_SECRET, AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a' })).toEqual([
      expect.stringContaining('AUTH_JWT_SECRET: is the public development secret'),
    ]);
    expect(problems({ NODE_ENV: 'production' })).toEqual([
      expect.stringContaining('AUTH_JWKS_URL: required when NODE_ENV=production'),
      expect.stringContaining('AUTH_ISSUER: required'),
      expect.stringContaining('AUTH_AUDIENCE: required'),
    ]);
  });

  it('accepts production with a JWKS URL (and no HS256 at all), or with its own secret', () => {
    const jwks = loadAuthConfig({
      NODE_ENV: 'production',
      AUTH_JWKS_URL: 'https://idp.example/jwks',
      AUTH_ISSUER: 'https://idp.example',
      AUTH_AUDIENCE: 'api',
    });
    expect(jwks).toMatchObject({
      production: true,
      secret: null,
      developmentSecret: false,
      jwks: { url: 'https://idp.example/jwks', algorithms: ['RS256', 'ES256'] },
    });
    const own = loadAuthConfig({ NODE_ENV: 'production', AUTH_JWT_SECRET: 'an-operator-chosen-secret-of-32-bytes!', AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a' });
    expect(own.developmentSecret).toBe(false);
  });

  it('reports bad values together: short secret, bad URL, unknown algorithm, bad claim names', () => {
    expect(
      problems({ AUTH_JWT_SECRET: 'short', AUTH_JWKS_URL: 'ftp://x', AUTH_JWKS_ALGORITHMS: 'RS256,HS256,none', AUTH_TENANT_CLAIMS: 'tenant, bad claim' }),
    ).toEqual([
      expect.stringMatching(/^AUTH_JWKS_URL: /),
      expect.stringMatching(/^AUTH_JWKS_ALGORITHMS: unexpected "HS256", "none"/),
      expect.stringMatching(/^AUTH_TENANT_CLAIMS: unexpected "bad claim"/),
    ]);
    expect(problems({ AUTH_JWT_SECRET: 'short' })).toEqual([expect.stringContaining('at least 32 bytes')]);
  });
});
