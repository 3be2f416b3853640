// Development tokens: `npm run token -- --tenant T --scopes a,b [--subject s] [--ttl 1h]
// [--agent <id>]` prints an HS256 JWT the gateway accepts outside production (signed with AUTH_JWT_SECRET, the public
// development secret by default). Refused when NODE_ENV=production: tokens there come from the
// identity provider.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { loadAuthConfig } from '../gateway/auth/config.ts';
import { AGENT_ID_PATTERN, TENANT_ID_PATTERN } from '../gateway/auth/principal.ts';
import { ConfigError } from '../runtime/config.ts';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../runtime/identity.ts';

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

/** "90", "90s", "15m", "12h", "7d" → seconds. */
export function parseTtl(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match?.[2] ?? ''];
  const seconds = match && unit ? Number(match[1]) * unit : NaN;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 30 * 86400)
    throw new UsageError(`--ttl must be a duration like 90s, 15m, 12h or 7d (at most 30d), got "${text}"`);
  return seconds;
}

const USAGE = `usage: npm run token -- [--tenant T] [--scopes a,b] [--subject s] [--ttl 1h] [--agent <id>]
  --tenant   tenant the token acts in (default: ${DEFAULT_TENANT})
  --scopes   comma-separated scopes (default: ${PLATFORM_SCOPES.join(',')}; with --agent: ${AGENT_SCOPES.join(',')})
  --subject  the token's sub (default: dev-admin@<tenant>; with --agent: agent:<id>)
  --ttl      lifetime: 90s, 15m, 12h, 7d (default: 12h)
  --agent    the agent the token acts as (its id): it may then act only as that agent`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      subject: { type: 'string' },
      ttl: { type: 'string' },
      agent: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const scopes = values.scopes
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const token = await mintDevToken({
    ...(values.tenant !== undefined ? { tenant: values.tenant } : {}),
    ...(scopes !== undefined ? { scopes } : {}),
    ...(values.subject !== undefined ? { subject: values.subject } : {}),
    ...(values.ttl !== undefined ? { ttlSeconds: parseTtl(values.ttl) } : {}),
    ...(values.agent !== undefined ? { agent: values.agent } : {}),
  });
  // Only the token on stdout, so `TOKEN=$(npm run -s token)` works.
  process.stdout.write(`${token}\n`);
}

if (process.argv[1] && resolve(process.argv[1]).endsWith('scripts/token.ts')) {
  main().catch((err: unknown) => {
    const badArguments = err instanceof UsageError || String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    if (badArguments) console.error(`${(err as Error).message}\n${USAGE}`);
    else if (err instanceof DevTokenRefused || err instanceof ConfigError) console.error(err.message);
    else console.error(err);
    process.exit(1);
  });
}
