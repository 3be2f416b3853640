import { STATUS_CODES, type ServerResponse } from 'node:http';
import { recordedTraceId } from '../../runtime/tracing.ts';

/**
 * Errors of the REST facade as `application/problem+json` (RFC 9457). A refusal a client must
 * tell apart from others with the same status (which agent may act, whether it may claim) has a
 * problem type of its own, `/problems/<code in kebab case>`, and a title saying what it is
 * (TYPED_PROBLEMS); any other problem is `about:blank` (the status says what kind of problem it
 * is, `title` is its reason phrase). The extension `code` carries the same machine-readable code
 * a GraphQL client gets in `extensions.code`, and `errors` points at each offending request value.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface FieldError {
  /** A JSON Pointer (RFC 6901) into the request body, as a URI fragment: `#/skills/0/id`. */
  pointer?: string;
  /** The path or query parameter at fault, e.g. `first` or `label[key]`. */
  parameter?: string;
  detail: string;
}

/** Where the problem types are: relative URIs, resolved against the gateway's own address. */
export const PROBLEM_TYPE_PREFIX = '/problems/';

/**
 * Every code with a problem type of its own: its HTTP status, title and what it means. The one
 * place such a code is declared for REST: graphql-errors.ts takes the statuses from here, the
 * OpenAPI document lists the types.
 */
export const TYPED_PROBLEMS = {
  AGENT_REQUIRED: { status: 400, title: 'Agent required', description: 'a caller that is not an agent must name the agent it acts for (`agentId`)' },
  AGENT_MISMATCH: { status: 403, title: 'Agent mismatch', description: "an agent's credential named another agent than itself" },
  DELEGATION_FORBIDDEN: { status: 403, title: 'Delegation forbidden', description: 'acting for a named agent needs the `tasks:delegate` scope' },
  AGENT_NOT_FOUND: { status: 404, title: 'Agent not found', description: "the caller's tenant has no such agent" },
  AGENT_NOT_ACTIVE: { status: 409, title: 'Agent not active', description: 'only an ACTIVE agent claims tasks; `status` says what it is' },
  SKILLS_NOT_REGISTERED: {
    status: 422,
    title: 'Skills not registered',
    description: 'a claim named skill tags the agent did not register (`unregisteredTags`)',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'Idempotency key reused',
    description: 'the `Idempotency-Key` was already used for a different request by this caller; use a new key for a new request',
  },
  IDEMPOTENCY_KEY_IN_FLIGHT: {
    status: 409,
    title: 'Idempotency key in flight',
    description: 'a request with the same `Idempotency-Key` is still being processed; retry once it has answered',
  },
  DIMENSION_MISMATCH: {
    status: 422,
    title: 'Dimension mismatch',
    description: "a vector's dimension differs from the tenant's memory vectors (`expected`, `actual`)",
  },
  GRAPH_LIMIT_EXCEEDED: {
    status: 422,
    title: 'Graph limit exceeded',
    description: 'a knowledge-graph request asked for more than its bounds allow (`field`, `max`): fewer hops, nodes, edges or items',
  },
  EMBEDDINGS_UNAVAILABLE: {
    status: 503,
    title: 'Embeddings unavailable',
    description: 'the embeddings provider failed or answered no usable vectors (`reason`); nothing was written, try again',
  },
  MESSAGE_TOO_LARGE: {
    status: 413,
    title: 'Message too large',
    description: "a message's parts exceed COLLABORATION_MESSAGE_MAX_BYTES of JSON (`bytes`, `maxBytes`)",
  },
  CHANNEL_FULL: { status: 409, title: 'Channel full', description: 'the channel has its maximum of participants (`maxParticipants`)' },
  NOT_A_PARTICIPANT: {
    status: 403,
    title: 'Not a participant',
    description: 'only participants (not observers, for sending) may do this in the channel; join it or ask an owner to add you',
  },
  DEPENDENCY_UNAVAILABLE: {
    status: 503,
    title: 'Dependency unavailable',
    description: 'a subgraph could not reach another one it needs (`serviceName`); try again',
  },
  WEBHOOK_SIGNATURE_INVALID: {
    status: 401,
    title: 'Webhook signature invalid',
    description:
      "an inbound webhook's signature (X-Hub-Signature-256, webhook-signature and its timestamp) or token (X-Gitlab-Token) did not match the integration's secret",
  },
  WEBHOOK_REPLAYED: {
    status: 409,
    title: 'Webhook replayed',
    description: 'an inbound webhook with this delivery id was already received; it is not processed again',
  },
} as const satisfies Record<string, { status: number; title: string; description: string }>;

type TypedCode = keyof typeof TYPED_PROBLEMS;

function isTyped(code: string): code is TypedCode {
  return Object.hasOwn(TYPED_PROBLEMS, code);
}

/** `AGENT_NOT_ACTIVE` → `/problems/agent-not-active`; about:blank for a code without a type. */
export function problemType(code: string): string {
  return isTyped(code) ? `${PROBLEM_TYPE_PREFIX}${code.toLowerCase().replace(/_/g, '-')}` : 'about:blank';
}

export interface Problem {
  /** `about:blank`, or the problem type of the code (TYPED_PROBLEMS). */
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request path that failed. */
  instance: string;
  code: string;
  /** The x-request-id of the request, also in the service's log lines. */
  requestId: string;
  /** The trace id of the request, when tracing recorded it (runtime/tracing.ts). */
  traceId?: string;
  errors?: FieldError[];
}

export function problem(status: number, code: string, detail: string, where: { instance: string; requestId: string }, errors?: FieldError[]): Problem {
  return {
    type: problemType(code),
    title: isTyped(code) ? TYPED_PROBLEMS[code].title : (STATUS_CODES[status] ?? 'Error'),
    status,
    detail,
    instance: where.instance,
    code,
    requestId: where.requestId,
    ...withTraceId(),
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
}

export function sendProblem(res: ServerResponse, body: Problem, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(body.status, { ...headers, 'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** A JSON Pointer fragment from path segments, escaped per RFC 6901. */
export function pointer(segments: readonly string[]): string {
  return `#${segments.map((s) => `/${s.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('')}`;
}

/** { traceId } when the active span is recorded, else nothing. */
function withTraceId(): { traceId?: string } {
  const traceId = recordedTraceId();
  return traceId ? { traceId } : {};
}
