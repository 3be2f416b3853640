// Which credential a request carries, read the same way from HTTP headers and from a graphql-ws
// connection_init payload: `Authorization: Bearer <JWT>`, `Authorization: ApiKey <key>` or
// `X-API-Key: <key>`. Two different credentials at once are refused rather than one picked.
import { AuthError } from './principal.ts';

export type Credentials = { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'apiKey'; key: string };

// Far above any real token or key; bounds the work done on a hostile header.
const MAX_CREDENTIAL_LENGTH = 8192;

/** `get` returns a header (or connection parameter) by lower-case name. */
export function readCredentials(get: (name: string) => string | undefined | null): Credentials {
  const authorization = get('authorization')?.trim();
  const apiKeyHeader = get('x-api-key')?.trim();
  let fromAuthorization: Credentials = { kind: 'none' };
  if (authorization) {
    const match = /^(\S+)\s+(\S+)$/.exec(authorization);
    const scheme = match?.[1]?.toLowerCase();
    const value = match?.[2];
    if (!value || value.length > MAX_CREDENTIAL_LENGTH)
      throw new AuthError('malformed', 'expected "Authorization: Bearer <token>" or "Authorization: ApiKey <key>"');
    if (scheme === 'bearer') fromAuthorization = { kind: 'bearer', token: value };
    else if (scheme === 'apikey') fromAuthorization = { kind: 'apiKey', key: value };
    else throw new AuthError('malformed', `unsupported authorization scheme "${(match?.[1] ?? '').slice(0, 20)}"`);
  }
  if (!apiKeyHeader) return fromAuthorization;
  if (apiKeyHeader.length > MAX_CREDENTIAL_LENGTH || /\s/.test(apiKeyHeader)) throw new AuthError('malformed', 'invalid X-API-Key');
  if (fromAuthorization.kind === 'bearer' || (fromAuthorization.kind === 'apiKey' && fromAuthorization.key !== apiKeyHeader)) {
    throw new AuthError('malformed', 'send one credential: Authorization or X-API-Key, not both');
  }
  return { kind: 'apiKey', key: apiKeyHeader };
}

/**
 * graphql-ws clients put credentials in connection_init's payload; accepted under the header
 * names (any case) and as `token` / `apiKey`, which browser clients commonly use.
 */
export function credentialsFromConnectionParams(params: Readonly<Record<string, unknown>> | null | undefined): Credentials {
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(params ?? {})) if (typeof v === 'string') lower.set(k.toLowerCase(), v);
  const token = lower.get('token');
  const apiKey = lower.get('apikey');
  return readCredentials((name) => {
    if (name === 'authorization') return lower.get('authorization') ?? (token ? `Bearer ${token}` : undefined);
    if (name === 'x-api-key') return lower.get('x-api-key') ?? apiKey;
    return undefined;
  });
}
