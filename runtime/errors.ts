import { GraphQLError } from 'graphql';

/**
 * The error codes clients can branch on (extensions.code). Domain code throws these; anything
 * else that escapes a resolver is masked as INTERNAL_SERVER_ERROR by the server's formatError.
 */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'FORBIDDEN'
  | 'UNAUTHENTICATED'
  // Who may act for which agent, and whether that agent may take work (orchestration).
  | 'AGENT_REQUIRED'
  | 'AGENT_MISMATCH'
  | 'DELEGATION_FORBIDDEN'
  | 'AGENT_NOT_FOUND'
  | 'AGENT_NOT_ACTIVE'
  | 'SKILLS_NOT_REGISTERED'
  // Idempotent create mutations (runtime/idempotency.ts).
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'IDEMPOTENCY_KEY_IN_FLIGHT'
  // A vector whose dimension differs from the ones stored (memory).
  | 'DIMENSION_MISMATCH'
  // The embeddings provider failed (memory with EMBEDDINGS_URL).
  | 'EMBEDDINGS_UNAVAILABLE'
  // Inbound webhooks (integrations): a signature or token that does not match, a delivery id seen before.
  | 'WEBHOOK_SIGNATURE_INVALID'
  | 'WEBHOOK_REPLAYED'
  // Collaboration limits and roles: a message too large, a sender over its rate, a full
  // channel, a caller who is not (or only observes as) a participant.
  | 'MESSAGE_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'CHANNEL_FULL'
  | 'NOT_A_PARTICIPANT'
  // A knowledge-graph request past its bounds: depth, nodes, edges, batch size (memory).
  | 'GRAPH_LIMIT_EXCEEDED';

export function domainError(code: ErrorCode, message: string, details?: Record<string, unknown>): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...details } });
}

export const badInput = (message: string, details?: Record<string, unknown>): GraphQLError => domainError('BAD_USER_INPUT', message, details);

export const notFound = (entity: string, id: string): GraphQLError => domainError('NOT_FOUND', `${entity} "${id}" not found`, { entity, id });

export const conflict = (message: string, details?: Record<string, unknown>): GraphQLError => domainError('CONFLICT', message, details);

/** An agent's caller (an agent credential or agent token) acting on another agent: 403 over REST. */
export const agentMismatch = (message: string, details?: Record<string, unknown>): GraphQLError => domainError('AGENT_MISMATCH', message, details);
