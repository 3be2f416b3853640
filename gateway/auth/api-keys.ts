// API keys at the gateway: a presented key is checked by the governance subgraph (its
// @inaccessible verifyApiKey, called directly with a gateway identity token), and valid answers
// are remembered briefly so a busy partner does not cost a subgraph call per request. A revoked
// key therefore stops working within cacheMs.
import { createHash } from 'node:crypto';
import type { IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { AuthError, type AuthenticatedPrincipal } from './principal.ts';

const VERIFY = 'query VerifyApiKey($key: String!) { verifyApiKey(key: $key) { keyId tenantId subject scopes agentId } }';
// Longer than any key governance issues: refused without asking it.
const MAX_KEY_LENGTH = 256;
const MAX_CACHED = 10_000;

export interface ApiKeyVerifierOptions {
  /**
   * The governance subgraph's GraphQL endpoint, or where to read it on every check: a supergraph
   * reload may move governance, and the gateway's routing follows. None: 503 'keys unavailable'.
   */
  url: string | (() => string | undefined);
  identity: IdentityService;
  /** The governance subgraph's name: the audience of the identity token. */
  audience?: string;
  timeoutMs?: number;
  /** How long a valid key is trusted without asking again; 0 asks every time. */
  cacheMs?: number;
  fetch?: typeof fetch;
  clock?: () => number;
  /** Where the reason governance could not answer goes: the caller only hears 'keys unavailable'. */
  logger?: Pick<Logger, 'warn'>;
}

export interface ApiKeyVerifier {
  /** The principal the key acts as; AuthError 'invalid api key' (401) or 'keys unavailable' (503). */
  verify(key: string, requestId?: string): Promise<AuthenticatedPrincipal>;
}

interface VerifyResponse {
  data?: { verifyApiKey: { keyId: string; tenantId: string; subject: string; scopes: string[]; agentId?: string | null } | null } | null;
  errors?: unknown[];
}

export function createApiKeyVerifier(options: ApiKeyVerifierOptions): ApiKeyVerifier {
  const doFetch = options.fetch ?? fetch;
  const clock = options.clock ?? Date.now;
  const cacheMs = options.cacheMs ?? 10_000;
  const audience = options.audience ?? 'governance';
  const { url: configured } = options;
  const currentUrl = typeof configured === 'function' ? configured : () => configured;
  // By hash: the cache never holds a usable key.
  const cache = new Map<string, { principal: AuthenticatedPrincipal; until: number }>();
  // Concurrent first uses of one key (a partner's burst after a deploy) share one question to governance.
  const inflight = new Map<string, Promise<AuthenticatedPrincipal>>();

  async function ask(key: string, requestId: string | undefined): Promise<AuthenticatedPrincipal> {
    const url = currentUrl();
    if (!url) throw new AuthError('keys unavailable', 'no governance subgraph is routed, so API keys cannot be checked');
    const token = await options.identity.signIdentity({ kind: 'service', subject: 'gateway', tenantId: null, scopes: [] }, audience, requestId ?? null);
    let body: VerifyResponse;
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-gateway-identity': token, ...(requestId ? { 'x-request-id': requestId } : {}) },
        body: JSON.stringify({ query: VERIFY, variables: { key } }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
      });
      body = (await res.json()) as VerifyResponse;
      if (!res.ok || body.errors || body.data === undefined || body.data === null) {
        throw new Error(`governance answered HTTP ${res.status}${body.errors ? `: ${JSON.stringify(body.errors).slice(0, 500)}` : ''}`);
      }
    } catch (err) {
      options.logger?.warn({ err, url, requestId }, 'API key check failed: governance could not answer');
      throw new AuthError('keys unavailable', 'API keys cannot be checked right now');
    }
    const found = body.data.verifyApiKey;
    if (!found) throw new AuthError('invalid api key');
    // An agent credential acts as its agent: the subgraphs get it signed as the identity's agentId.
    return {
      kind: 'apiKey',
      subject: found.subject,
      tenantId: found.tenantId,
      scopes: found.scopes,
      expiresAt: null,
      apiKeyId: found.keyId,
      ...(found.agentId ? { agentId: found.agentId } : {}),
    };
  }

  return {
    async verify(key, requestId) {
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw new AuthError('invalid api key');
      const id = createHash('sha256').update(key).digest('hex');
      const now = clock();
      const hit = cache.get(id);
      if (hit && hit.until > now) return hit.principal;
      cache.delete(id);
      const pending = inflight.get(id);
      if (pending) return pending;
      const asked = ask(key, requestId)
        .then((principal) => {
          if (cacheMs > 0) {
            if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
            cache.set(id, { principal, until: clock() + cacheMs });
          }
          return principal;
        })
        .finally(() => inflight.delete(id));
      inflight.set(id, asked);
      return asked;
    },
  };
}
