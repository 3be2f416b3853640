import type { GraphQLFormattedError } from 'graphql';
import { pointer, TYPED_PROBLEMS, type FieldError } from './problem.ts';
import type { RouteModel } from './route-model.ts';

/**
 * GraphQL errors (already formatted and masked by the gateway) → an HTTP status and the field
 * details of a problem document, pointing at the path/query parameter or body value the client
 * sent rather than at GraphQL argument names.
 */

export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  BAD_USER_INPUT: 400,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  TOO_MANY_REQUESTS: 429,
  // The stored operation was checked against the schema at load: failing validation now is the
  // server's fault (e.g. a supergraph change mid-request), not the client's.
  GRAPHQL_VALIDATION_FAILED: 500,
  GRAPHQL_PARSE_FAILED: 500,
  INTERNAL_SERVER_ERROR: 500,
  DOWNSTREAM_SERVICE_ERROR: 502,
  SUBGRAPH_UNAVAILABLE: 503,
  // The codes with a problem type of their own declare their status with it.
  ...Object.fromEntries(Object.entries(TYPED_PROBLEMS).map(([code, { status }]) => [code, status])),
};

/** The status for a code; codes come from any subgraph, so only the table's own entries count. */
export function statusOf(code: string): number | undefined {
  return Object.hasOwn(STATUS_BY_CODE, code) ? STATUS_BY_CODE[code] : undefined;
}

// When several errors come back, the one a client must act on first decides the status.
const PRECEDENCE = [401, 403, 429, 400, 422, 404, 409, 413, 503, 502, 500];

export interface MappedErrors {
  status: number;
  code: string;
  detail: string;
  errors: FieldError[];
}

function codeOf(error: GraphQLFormattedError): string {
  const code = error.extensions?.code;
  return typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR';
}

/** `input.skills[2].id` → ['input', 'skills', '2', 'id']. */
function segmentsOf(field: string): string[] {
  return field
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((s) => s !== '');
}

/** Where the value named by a GraphQL argument path (`extensions.field` or `argument`) was sent. */
export function locateArgument(route: RouteModel, field: string): Omit<FieldError, 'detail'> | undefined {
  const segments = segmentsOf(field);
  const first = segments[0];
  // Input validation in the subgraphs names fields of a whole-body input relative to the input.
  if (route.body?.mode === 'whole' && first !== undefined && route.body.inputTypeFields.has(first)) return { pointer: pointer(segments) };
  for (let n = segments.length; n > 0; n--) {
    const source = route.argumentSources.get(segments.slice(0, n).join('.'));
    if (!source) continue;
    const rest = segments.slice(n);
    if (source.in === 'body') return { pointer: pointer([...source.path, ...rest]) };
    return {
      parameter:
        source.name +
        rest
          .filter((s) => !/^\d+$/.test(s))
          .map((s) => `[${s}]`)
          .join(''),
    };
  }
  return undefined;
}

/** Where a variable's value was sent, for executor errors that name `$variable`. */
function locateVariable(route: RouteModel, variable: string): Omit<FieldError, 'detail'> | undefined {
  const param = route.parameters.find((p) => p.name === variable);
  if (param) return { parameter: param.name };
  if (route.body?.variables.includes(variable)) return { pointer: pointer(route.body.mode === 'whole' ? [] : [variable]) };
  return undefined;
}

function fieldErrorOf(route: RouteModel, error: GraphQLFormattedError): FieldError | undefined {
  const ext = error.extensions ?? {};
  const named = typeof ext.field === 'string' ? ext.field : typeof ext.argument === 'string' ? ext.argument : undefined;
  let place = named === undefined ? undefined : locateArgument(route, named);
  if (!place) {
    const variable = /Variable "\$(\w+)"/.exec(error.message)?.[1];
    if (variable) place = locateVariable(route, variable);
  }
  return place ? { ...place, detail: error.message } : undefined;
}

export function mapGraphQLErrors(route: RouteModel, errors: readonly GraphQLFormattedError[], httpStatus: number | undefined): MappedErrors {
  const statuses = errors.map((e) => statusOf(codeOf(e)) ?? (httpStatus !== undefined && httpStatus >= 400 ? httpStatus : 500));
  const rank = (s: number) => {
    const i = PRECEDENCE.indexOf(s);
    return i < 0 ? PRECEDENCE.length : i;
  };
  let chosen = 0;
  statuses.forEach((s, i) => {
    if (rank(s) < rank(statuses[chosen] ?? 500)) chosen = i;
  });
  const status = statuses[chosen] ?? 500;
  const lead = errors[chosen];
  const detail = errors.length === 1 ? (lead?.message ?? 'Error') : `${errors.length} errors: ${errors.map((e) => e.message).join('; ')}`;
  const fieldErrors = errors.map((e) => fieldErrorOf(route, e)).filter((f): f is FieldError => f !== undefined);
  return { status, code: lead ? codeOf(lead) : 'INTERNAL_SERVER_ERROR', detail, errors: fieldErrors };
}
