// Credentials for tests: user tokens the gateway accepts (or is meant to refuse), and gateway
// identity tokens for calling a subgraph directly, the way only the gateway should.
import { SignJWT } from 'jose';
import { DEV_AUDIENCE, DEV_ISSUER, DEV_JWT_SECRET } from '../../gateway/auth/config.ts';
import { DEFAULT_TENANT } from '../../runtime/context.ts';
import { createIdentityService, loadIdentityConfig, PLATFORM_SCOPES, type IdentityClaims } from '../../runtime/identity.ts';

/**
 * The identity-signing secret every process of a test platform shares (startPlatform passes it);
 * not the public development one, so a test also shows that gateway and subgraphs agree on it.
 */
export const TEST_SIGNING_SECRET = 'test-only-gateway-signing-secret-0123456789abcdef';
/** For in-process services: the same secret as the platforms. */
export const TEST_SECURITY_ENV = { GATEWAY_SIGNING_SECRET: TEST_SIGNING_SECRET } as const;

export interface TokenOptions {
  tenant?: string;
  scopes?: readonly string[];
  subject?: string;
  /** Seconds from now; negative for an expired token. Default one hour. */
  expiresIn?: number;
  /** Seconds from now until the token is valid. */
  notBefore?: number;
  issuer?: string;
  audience?: string;
  secret?: string;
  /** The agent the token acts as (the `agent_id` claim). */
  agentId?: string;
}

/** An HS256 user token as the gateway's development configuration accepts it, unless told otherwise. */
export async function userToken(options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({
    tenant: options.tenant ?? DEFAULT_TENANT,
    scope: [...(options.scopes ?? PLATFORM_SCOPES)].join(' '),
    ...(options.agentId === undefined ? {} : { agent_id: options.agentId }),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.subject ?? `tester@${options.tenant ?? DEFAULT_TENANT}`)
    .setIssuer(options.issuer ?? DEV_ISSUER)
    .setAudience(options.audience ?? DEV_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 3600));
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(new TextEncoder().encode(options.secret ?? DEV_JWT_SECRET));
}

let adminToken: Promise<string> | undefined;

/** Authorization for the admin of the default tenant (every scope): what tests send unless told otherwise. */
export async function defaultAuthorization(): Promise<string> {
  adminToken ??= userToken({ subject: 'test-admin', expiresIn: 24 * 3600 });
  return `Bearer ${await adminToken}`;
}

export async function bearer(options: TokenOptions = {}): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await userToken(options)}` };
}

/** Headers a subgraph accepts as coming from the gateway: an identity token for that subgraph. */
export async function identityHeaders(
  audience: string,
  claims: Partial<IdentityClaims> = {},
  secret: string = TEST_SIGNING_SECRET,
): Promise<Record<string, string>> {
  const service = createIdentityService(loadIdentityConfig({ GATEWAY_SIGNING_SECRET: secret }));
  const token = await service.signIdentity(
    {
      kind: claims.kind ?? 'user',
      subject: claims.subject ?? 'test-admin',
      tenantId: claims.tenantId === undefined ? DEFAULT_TENANT : claims.tenantId,
      scopes: claims.scopes ?? PLATFORM_SCOPES,
      // An agent's identity (an agent credential): the caller acts as this agent only.
      agentId: claims.agentId ?? null,
    },
    audience,
  );
  return { 'x-gateway-identity': token };
}
