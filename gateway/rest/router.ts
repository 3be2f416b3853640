import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GraphQLRequest, GraphQLResponse } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { BodyTooLargeError, readBody, type RequestInfo } from '../../runtime/http.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { GatewayContext } from '../context.ts';
import { mapGraphQLErrors, statusOf } from './graphql-errors.ts';
import type { RouteDeclaration } from './operations.ts';
import { readPathParam, readQuery } from './params.ts';
import { pointer, problem, sendProblem, type FieldError } from './problem.ts';
import type { RouteModel } from './route-model.ts';
import type { RouteTable } from './route-table.ts';
import { bodyError, fieldErrors, parameterError, type Validator } from './validation.ts';

/**
 * The REST transport: match the route, turn path, query and body into the operation's variables,
 * validate them against the route's JSON Schemas, run the operation through the gateway's own
 * executor (Apollo Server's executeOperation, or the gateway's prepared operations, which answer as it
 * does: plugins, limits and error formatting are the graph's),
 * and answer with the root field's value or a problem document.
 */

export interface RuntimeRoute {
  method: string;
  path: string;
  declaration: RouteDeclaration;
  /** Undefined when the operation does not fit the loaded supergraph. */
  model: RouteModel | undefined;
  unavailableReasons: string[];
  /** Compiled on first use: compiling every route up front would stall a supergraph swap. */
  validators(): { parameters: Map<string, Validator>; body: Validator | undefined };
}

export interface RouterDeps {
  /** Runs an operation as apollo.executeOperation does (gateway/prepared-operations.ts executeOperation). */
  execute(request: GraphQLRequest, contextValue: GatewayContext): Promise<GraphQLResponse>;
  /** The same context factory as the GraphQL endpoint's, so every transport runs alike. */
  context: (info: RequestInfo) => Promise<GatewayContext>;
  maxBodyBytes: number;
  logger: Logger;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function isJsonType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || /^application\/[\w.+-]+\+json$/.test(type);
}

function sendJsonBody(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function fillLocation(template: string, value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const fields = value as Record<string, unknown>;
  let missing = false;
  const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = fields[name];
    if (typeof v !== 'string' && typeof v !== 'number') missing = true;
    return encodeURIComponent(String(v));
  });
  return missing ? undefined : path;
}

/**
 * A browser lets any page send a cross-site POST without asking (a form, or fetch in no-cors
 * mode) as long as its content type is a "simple" one; JSON is not, so a JSON POST from another
 * origin needs a CORS preflight, which this gateway never grants. Apollo's CSRF prevention guards
 * /graphql the same way. Requests without Origin (curl, servers) and same-origin pages (/docs) pass.
 */
function isCrossSiteSimpleRequest(req: IncomingMessage): boolean {
  if (isJsonType(req.headers['content-type'])) return false;
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    // "null" (sandboxed frames, file: pages) or garbage: not this site.
    return true;
  }
}

type Parsed = { ok: true; variables: Record<string, unknown> } | { ok: false; status: number; code: string; detail: string; errors?: FieldError[] };

async function readVariables(
  req: IncomingMessage,
  route: RuntimeRoute & { model: RouteModel },
  params: Record<string, string>,
  url: URL,
  maxBodyBytes: number,
): Promise<Parsed> {
  const { model } = route;
  const errors: FieldError[] = [];
  const variables: Record<string, unknown> = {};

  for (const p of model.parameters.filter((p) => p.in === 'path')) {
    const read = readPathParam(params[p.name] ?? '', p);
    if ('error' in read) errors.push(read.error);
    else variables[p.name] = read.value;
  }
  const query = readQuery(url.searchParams, model.parameters);
  errors.push(...query.errors);
  Object.assign(variables, query.values);
  const validators = route.validators();
  for (const p of model.parameters) {
    const validate = validators.parameters.get(p.name);
    if (validate && p.name in variables) errors.push(...fieldErrors(validate(variables[p.name]), parameterError(p.name)));
  }

  if (BODY_METHODS.has(route.method)) {
    let raw: string;
    try {
      raw = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return { ok: false, status: 413, code: 'PAYLOAD_TOO_LARGE', detail: err.message };
      throw err;
    }
    let body: unknown;
    if (raw.trim() !== '') {
      if (!isJsonType(req.headers['content-type'])) {
        return {
          ok: false,
          status: 415,
          code: 'UNSUPPORTED_MEDIA_TYPE',
          detail: `The request body must be JSON (content-type: application/json), got "${req.headers['content-type'] ?? 'none'}"`,
        };
      }
      try {
        body = JSON.parse(raw);
      } catch (err) {
        return { ok: false, status: 400, code: 'BAD_REQUEST', detail: `Malformed JSON body: ${(err as Error).message}` };
      }
    }
    const spec = model.body;
    if (body === undefined) {
      if (spec?.required) errors.push({ pointer: pointer([]), detail: 'a JSON request body is required' });
    } else if (!spec) {
      // A body that is not {} would be ignored; saying so catches a client sending the wrong thing.
      const keys = body !== null && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : undefined;
      if (keys === undefined) errors.push({ pointer: pointer([]), detail: 'this route takes no request body' });
      else for (const k of keys) errors.push({ pointer: pointer([k]), detail: 'this route takes no request body' });
    } else if (validators.body) {
      errors.push(...fieldErrors(validators.body(body), bodyError));
      if (spec.mode === 'whole') variables[spec.variables[0] ?? ''] = body;
      else if (body !== null && typeof body === 'object') Object.assign(variables, body);
    }
  }
  if (errors.length > 0) {
    return {
      ok: false,
      status: 400,
      code: 'BAD_USER_INPUT',
      detail: `The request is invalid: ${errors.length} problem${errors.length === 1 ? '' : 's'} (see errors).`,
      errors,
    };
  }
  return { ok: true, variables };
}

export async function handleRestRequest(
  deps: RouterDeps,
  table: RouteTable<RuntimeRoute>,
  req: IncomingMessage,
  res: ServerResponse,
  info: RequestInfo,
  url: URL,
): Promise<boolean> {
  if (!table.prefixes.has(url.pathname.split('/')[1] ?? '')) return false;
  const where = { instance: url.pathname, requestId: info.requestId };
  const method = (req.method ?? 'GET').toUpperCase();
  const match = table.match(method, url.pathname);
  if (match.kind === 'none') {
    sendProblem(res, problem(404, 'NOT_FOUND', `No route ${url.pathname}; the routes are listed at /openapi.json and /docs`, where));
    return true;
  }
  if (match.kind === 'method-not-allowed') {
    const allow = match.allowed.join(', ');
    if (method === 'OPTIONS') {
      res.writeHead(204, { allow });
      res.end();
    } else {
      sendProblem(res, problem(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}; use ${allow}`, where), { allow });
    }
    return true;
  }
  const route = match.entry;
  info.operationName = route.declaration.operationId;
  info.route = `${route.method} ${route.path}`;
  const { model } = route;
  if (!model) {
    deps.logger.error({ operationName: route.declaration.operationId, reasons: route.unavailableReasons }, 'REST route does not fit the loaded supergraph');
    sendProblem(
      res,
      problem(503, 'ROUTE_UNAVAILABLE', `${route.method} ${route.path} is unavailable: its operation does not fit the schema currently served`, where),
    );
    return true;
  }

  if (method !== 'GET' && isCrossSiteSimpleRequest(req)) {
    sendProblem(res, problem(403, 'FORBIDDEN', `Cross-site ${method} from ${req.headers.origin} refused: send content-type: application/json`, where));
    return true;
  }

  const parsed = await readVariables(req, { ...route, model }, match.params, url, deps.maxBodyBytes);
  if (!parsed.ok) {
    sendProblem(res, problem(parsed.status, parsed.code, parsed.detail, where, parsed.errors));
    return true;
  }

  let contextValue: GatewayContext;
  try {
    contextValue = await deps.context(info);
  } catch (err) {
    // A context that refuses the request (e.g. bad credentials) says why with a coded GraphQLError.
    if (!(err instanceof GraphQLError) || typeof err.extensions.code !== 'string') throw err;
    const code = err.extensions.code;
    const http = err.extensions.http as { status?: unknown; headers?: Map<string, string> } | undefined;
    const status = statusOf(code) ?? (typeof http?.status === 'number' ? http.status : 500);
    // Retry-After and the RateLimit fields of a refused request, as over GraphQL.
    const headers: Record<string, string> = {};
    if (http?.headers) for (const [name, value] of http.headers) headers[name] = value;
    sendProblem(res, problem(status, code, err.message, where), headers);
    return true;
  }
  const response = await deps.execute(
    {
      query: route.declaration.document,
      operationName: route.declaration.operationId,
      variables: parsed.variables,
      // Plugins (auth, limits) read the request head from here, as for GraphQL over HTTP.
      http: { method, headers: info.headers, search: url.search, body: undefined },
    },
    contextValue,
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of response.http.headers) if (k !== 'content-type' && k !== 'content-length') headers[k] = v;

  if (response.body.kind !== 'single') {
    // Only @defer/@stream produce incremental results, and route operations use neither.
    sendProblem(res, problem(500, 'INTERNAL_SERVER_ERROR', 'The operation answered incrementally, which REST routes do not support', where), headers);
    return true;
  }
  const { data, errors } = response.body.singleResult;
  if (errors && errors.length > 0) {
    const mapped = mapGraphQLErrors(model, errors, response.http.status);
    sendProblem(res, problem(mapped.status, mapped.code, mapped.detail, where, mapped.errors), headers);
    return true;
  }
  const value = (data as Record<string, unknown> | null | undefined)?.[model.responseKey];
  if (value === null || value === undefined) {
    if (route.declaration.nullStatus === 204) {
      res.writeHead(204, headers);
      res.end();
    } else {
      const ids = route.declaration.pathParams.map((p) => `"${String(parsed.variables[p])}"`).join(', ');
      sendProblem(res, problem(404, 'NOT_FOUND', `${model.resourceName}${ids ? ` ${ids}` : ''} not found`, where), headers);
    }
    return true;
  }
  if (route.declaration.location) {
    const location = fillLocation(route.declaration.location, value);
    if (location) headers.location = location;
  }
  sendJsonBody(res, route.declaration.status, value, headers);
  return true;
}
