// Development tokens: `npm run token -- --tenant T --scopes a,b [--subject s] [--ttl 1h]
// [--agent <id>]` prints an HS256 JWT the gateway accepts outside production (signed with AUTH_JWT_SECRET, the public
// development secret by default). Refused when NODE_ENV=production: tokens there come from the
// identity provider.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DevTokenRefused, mintDevToken, UsageError } from '../gateway/auth/dev-token.ts';
import { ConfigError } from '../runtime/config.ts';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../runtime/identity.ts';

export { DevTokenRefused, type DevTokenOptions, mintDevToken, UsageError } from '../gateway/auth/dev-token.ts';

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
