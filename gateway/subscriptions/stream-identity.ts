// Who a shared subscription stream acts as. Identical subscriptions share one upstream stream
// (shared-stream.ts), so the stream outlives any one of its subscribers: its upstream subscription
// and the entity fetches of every event must not borrow a subscriber's credential (its subject,
// its request, its expiry). They run as the stream's own identity instead: exactly what decides
// what a subscriber may receive (kind, tenant, scopes, agent), which the stream key makes the
// same for everyone who shares it, and nothing that ends with one subscriber.
import { randomUUID } from 'node:crypto';
import { HeaderMap } from '@apollo/server';
import type { Logger } from '../../runtime/logger.ts';
import { ANONYMOUS, type Principal } from '../auth/principal.ts';
import type { GatewayContext } from '../context.ts';

/** The subject a stream's identity carries: no subscriber's, so subgraphs never attribute its requests to one. */
export const STREAM_SUBJECT = 'gateway:subscription-stream';

/**
 * What a subscriber's results depend on, as a stream key part: subscribers differing in any of
 * it never share a stream. The subject and the credential's expiry are left out on purpose: the
 * stream does not act as either.
 */
export function authorizationKey(principal: Principal): readonly unknown[] {
  if (principal.kind === 'anonymous') return ['anonymous'];
  return [principal.kind, principal.tenantId, [...new Set(principal.scopes)].sort(), principal.agentId ?? null];
}

/**
 * The stream's principal: the subscriber's authorization decisions, without its subject or expiry
 * (with its subject when keepSubject: a subgraph whose deliveries depend on who subscribes).
 */
export function streamPrincipal(principal: Principal, keepSubject = false): Principal {
  if (principal.kind === 'anonymous') return ANONYMOUS;
  return {
    kind: principal.kind,
    subject: keepSubject ? principal.subject : STREAM_SUBJECT,
    tenantId: principal.tenantId,
    scopes: [...new Set(principal.scopes)].sort(),
    expiresAt: null,
    ...(principal.agentId !== undefined ? { agentId: principal.agentId } : {}),
  };
}

/**
 * The context a stream's requests run with: its own request id and logger, its identity, and only
 * the forwarded headers that are part of the stream key (the same for every subscriber sharing it).
 */
export function streamContext(principal: Principal, headers: Iterable<readonly [string, string]>, logger: Logger, keepSubject = false): GatewayContext {
  const requestId = `stream-${randomUUID()}`;
  const identity = streamPrincipal(principal, keepSubject);
  return {
    requestId,
    headers: new HeaderMap([...headers].map(([name, value]) => [name, value] as [string, string])),
    logger: logger.child(identity.kind === 'anonymous' ? { stream: requestId } : { stream: requestId, tenantId: identity.tenantId }),
    principal: identity,
    remoteAddress: 'gateway',
  };
}
