// The development token: an HS256 JWT signed with AUTH_JWT_SECRET (the public development secret
// by default), as `npm run token` prints it, `npm start` shows it, and GraphiQL fills it in outside
// production. Refused when NODE_ENV=production: tokens there come from the identity provider.
import { SignJWT } from 'jose';
import { DEFAULT_TENANT } from '../../runtime/context.ts';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { loadAuthConfig } from './config.ts';
import { AGENT_ID_PATTERN, TENANT_ID_PATTERN } from './principal.ts';

export interface DevTokenOptions {
  tenant?: string;
  scopes?: readonly string[];
  subject?: string;
  /** Seconds; 12 hours by default. */
  ttlSeconds?: number;
  /** The agent the token acts as (AUTH_AGENT_CLAIM); then the scopes default to AGENT_SCOPES. */
  agent?: string;
}

export class DevTokenRefused extends Error {}
/** Bad arguments: the message says which, and the usage is shown. */
export class UsageError extends Error {}

/** The admin of the demo tenant with every scope, as `npm start` prints it, unless told otherwise. */
export async function mintDevToken(options: DevTokenOptions = {}, source: Record<string, string | undefined> = process.env): Promise<string> {
  if (source.NODE_ENV === 'production')
    throw new DevTokenRefused('Refusing to mint a development token with NODE_ENV=production: get tokens from your identity provider.');
  const config = loadAuthConfig(source);
  if (!config.secret) throw new DevTokenRefused('No AUTH_JWT_SECRET to sign with.');
  const tenant = options.tenant ?? DEFAULT_TENANT;
  if (!TENANT_ID_PATTERN.test(tenant)) throw new UsageError(`--tenant must be letters, digits and . _ : - (at most 128), got "${tenant.slice(0, 40)}"`);
  const agent = options.agent;
  if (agent !== undefined && !AGENT_ID_PATTERN.test(agent)) throw new UsageError(`--agent must be an agent id (a UUID), got "${agent.slice(0, 40)}"`);
  const scopes = [...(options.scopes ?? (agent === undefined ? PLATFORM_SCOPES : AGENT_SCOPES))];
  const badScope = scopes.find((s) => s === '' || /\s/.test(s));
  if (badScope !== undefined) throw new UsageError(`--scopes must be comma-separated scopes without spaces, got "${badScope}"`);
  const nowSeconds = Math.floor(Date.now() / 1000);
  const claims: Record<string, string> = { [config.tenantClaims[0] ?? 'tenant']: tenant, scope: scopes.join(' ') };
  if (agent !== undefined) claims[config.agentClaim] = agent.toLowerCase();
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.subject ?? (agent === undefined ? `dev-admin@${tenant}` : `agent:${agent.toLowerCase()}`))
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + (options.ttlSeconds ?? 12 * 3600))
    .sign(config.secret);
}
