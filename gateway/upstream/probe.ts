import { type Dispatcher, request } from 'undici';
import { IDENTITY_HEADER, type IdentityService } from '../../runtime/identity.ts';
import type { Replica } from './replicas.ts';

const PROBE_BODY = JSON.stringify({ query: '{ __typename }' });

/**
 * Asks an ejected replica for `{ __typename }`, as the gateway itself. Any answer below 500 means
 * the process serves HTTP again (a 401 from a signing-secret mismatch would show in every real
 * request anyway); refused, reset, silent or 5xx means not yet.
 */
export function replicaProbe(options: { subgraph: string; dispatcher: Dispatcher; identity?: IdentityService | undefined; timeoutMs: number }) {
  return async (replica: Replica): Promise<boolean> => {
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (options.identity)
        headers[IDENTITY_HEADER] = await options.identity.signIdentity(
          { kind: 'service', subject: 'gateway', tenantId: null, scopes: [] },
          options.subgraph,
          null,
        );
      const res = await request(replica.url, {
        method: 'POST',
        headers,
        body: PROBE_BODY,
        dispatcher: options.dispatcher,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      await res.body.dump();
      return res.statusCode < 500;
    } catch {
      return false;
    }
  };
}
