import { readFileSync } from 'node:fs';
import type { GraphQLSchema } from 'graphql';
import { COMPONENT_PREFIX, type JsonSchema } from './json-schema.ts';
import type { OperationSet } from './operations.ts';
import { PROBLEM_CONTENT_TYPE, problemType, TYPED_PROBLEMS } from './problem.ts';
import { compileRoutes, type CompiledRoutes, type RouteModel } from './route-model.ts';
import { SchemaValidator } from './validation.ts';

/**
 * The OpenAPI 3.1 document of the REST facade, generated from the route operations and the API
 * schema: nothing in it is written by hand except the conventions in info.description. The same
 * function produces the checked-in gateway/rest/generated/openapi.json (scripts/openapi.ts) and
 * the document the gateway serves, so the two cannot drift apart.
 */

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const DESCRIPTION = `Plain HTTP+JSON access to the agent platform for clients that do not speak GraphQL. Every
route runs a named GraphQL operation through the same gateway, resolvers and rules as the graph
at \`/graphql\`, so both always agree.

**Responses** are the operation's resource itself. Lists are
\`{ totalCount, nodes: [...], pageInfo: { hasNextPage, endCursor } }\`, newest first; pass
\`endCursor\` as \`after\` for the next page (\`first\` is 1 to 100, default 20).

**Errors** are \`application/problem+json\` (RFC 9457): \`status\`, \`title\`, \`detail\`, the
GraphQL error \`code\` (BAD_USER_INPUT, NOT_FOUND, CONFLICT, UNAUTHENTICATED, FORBIDDEN,
SUBGRAPH_UNAVAILABLE...), the \`requestId\` found in the server logs, and for invalid input
\`errors\`: one entry per bad value, with a JSON \`pointer\` into the body or the \`parameter\` name.
Requests are validated against the schemas below before anything runs: invalid input changes
nothing.`;

const PROBLEM_TYPE_DESCRIPTION = [
  'The problem type: `about:blank` (the status and `code` identify the problem), or for these codes a type of their own, relative to this server:',
  ...Object.entries(TYPED_PROBLEMS).map(([code, p]) => `\`${problemType(code)}\` (${p.status}, \`${code}\`): ${p.description}.`),
].join(' ');

const PROBLEM_SCHEMAS: Record<string, JsonSchema> = {
  Problem: {
    type: 'object',
    description: 'An error (RFC 9457 problem details).',
    properties: {
      type: { type: 'string', description: PROBLEM_TYPE_DESCRIPTION },
      title: { type: 'string', description: "The HTTP status' reason phrase." },
      status: { type: 'integer', description: 'The HTTP status code.' },
      detail: { type: 'string', description: 'What went wrong, for a human.' },
      instance: { type: 'string', description: 'The request path.' },
      code: { type: 'string', description: 'The machine-readable code, as GraphQL clients get it in extensions.code.', examples: ['BAD_USER_INPUT'] },
      requestId: { type: 'string', description: 'The request id (x-request-id), also in the server logs.' },
      traceId: { type: 'string', description: 'The trace id (W3C trace context) of the request, when tracing is on and recorded it.' },
      errors: { type: 'array', description: 'Each invalid request value.', items: { $ref: `${COMPONENT_PREFIX}FieldError` } },
    },
    required: ['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId'],
    additionalProperties: false,
  },
  FieldError: {
    type: 'object',
    description: 'One invalid request value: a body value (`pointer`) or a parameter (`parameter`).',
    properties: {
      pointer: { type: 'string', description: 'JSON Pointer into the request body, as a URI fragment.', examples: ['#/skills/0/id'] },
      parameter: { type: 'string', description: 'The path or query parameter.', examples: ['first'] },
      detail: { type: 'string', description: 'What is wrong with it.' },
    },
    required: ['detail'],
    additionalProperties: false,
  },
};

function problemResponse(description: string): Record<string, unknown> {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: `${COMPONENT_PREFIX}Problem` } } } };
}

const RESPONSES: Record<string, Record<string, unknown>> = {
  BadRequest: problemResponse('Invalid input (code BAD_USER_INPUT or BAD_REQUEST); `errors` lists each bad value. Nothing was changed.'),
  NotFound: problemResponse('No such resource (code NOT_FOUND).'),
  Conflict: problemResponse(
    'Not possible in the current state (code CONFLICT): an illegal transition, or `expectedVersion` is stale; or the agent is not ACTIVE (type `/problems/agent-not-active`); or a request with the same `Idempotency-Key` is still in flight (type `/problems/idempotency-key-in-flight`: retry once it has answered). Nothing was changed.',
  ),
  IdempotencyKeyReused: problemResponse(
    'The `Idempotency-Key` was already used by this caller for a different request (type `/problems/idempotency-key-reused`, code IDEMPOTENCY_KEY_REUSED). Nothing was changed; use a new key for a new request.',
  ),
  ServiceUnavailable: problemResponse('A subgraph needed for the answer is unavailable (code SUBGRAPH_UNAVAILABLE); retry later.'),
  Error: problemResponse(
    'Any other error: 401 UNAUTHENTICATED (no or invalid credentials), 403 FORBIDDEN (a scope is missing), the typed problems listed under `Problem.type` (e.g. 403 `/problems/agent-mismatch`, 404 `/problems/agent-not-found`, 422 `/problems/skills-not-registered`), 413, 415, 429 RATE_LIMITED (with Retry-After), 500, 502.',
  ),
};

const SECURITY_SCHEMES: Record<string, Record<string, unknown>> = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'A user token from the identity provider (development: `npm run token`), with the tenant in its `tenant` claim and scopes such as agents:read, agents:write, tasks:read, tasks:write, admin in `scope`. Missing or invalid: 401 UNAUTHENTICATED; a scope the route needs is missing: 403 FORBIDDEN.',
  },
  apiKeyAuth: {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: 'A partner API key created by a tenant admin (GraphQL `createApiKey`); also accepted as `Authorization: ApiKey <key>`.',
  },
};

/** runtime/idempotency.ts: the header, its rule, and what a repeat gets. */
const IDEMPOTENCY_KEY_PARAMETER = {
  name: 'Idempotency-Key',
  in: 'header' as const,
  required: false,
  description:
    'Makes a retry safe (IETF draft-ietf-httpapi-idempotency-key-header-07): the same key with the same request, by the same caller, within IDEMPOTENCY_KEY_TTL_SECONDS (24 h by default), returns the first answer and creates nothing more; the same key with a different request is refused (422 `/problems/idempotency-key-reused`); a request still in flight with the same key gets 409 (`/problems/idempotency-key-in-flight`).',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7E]+$' },
};

const responseRef = (name: string) => ({ $ref: `#/components/responses/${name}` });

function operationObject(route: RouteModel): Record<string, unknown> {
  const d = route.declaration;
  const parameters: Record<string, unknown>[] = route.parameters.map((p) => ({
    name: p.name,
    in: p.in,
    required: p.required,
    ...(p.description ? { description: p.description } : {}),
    ...(p.style === 'deepObject' ? { style: 'deepObject', explode: true } : {}),
    schema: p.schema,
    ...(p.name in d.parameterExamples ? { example: d.parameterExamples[p.name] } : {}),
  }));
  // A route that creates something (201) replays its first answer for a repeated key.
  const creates = d.operation.operation === 'mutation' && d.status === 201;
  if (creates) parameters.push(IDEMPOTENCY_KEY_PARAMETER);
  const responses: Record<string, unknown> = {};
  const success: Record<string, unknown> = {
    description: `${d.status === 201 ? 'Created. ' : ''}${route.resourceDescription ?? `The ${route.resourceName}.`}`,
    content: { 'application/json': { schema: route.response } },
  };
  if (d.location)
    success.headers = { Location: { description: `Where the created ${route.resourceName} is read: ${d.location}.`, schema: { type: 'string' } } };
  responses[String(d.status)] = success;
  if (route.nullable && d.nullStatus === 204) responses['204'] = { description: `No ${route.resourceName}: nothing to return.` };
  responses['400'] = responseRef('BadRequest');
  if (d.pathParams.length > 0 || (route.nullable && d.nullStatus === 404)) responses['404'] = responseRef('NotFound');
  if (d.operation.operation === 'mutation') responses['409'] = responseRef('Conflict');
  if (creates) responses['422'] = responseRef('IdempotencyKeyReused');
  responses['503'] = responseRef('ServiceUnavailable');
  responses.default = responseRef('Error');

  const rootType = d.operation.operation === 'query' ? 'Query' : 'Mutation';
  const graphql = `Runs the GraphQL ${d.operation.operation} \`${d.operationId}\` (\`${rootType}.${route.responseKey}\`).`;
  return {
    operationId: d.operationId,
    summary: route.summary,
    description: [route.description, graphql].filter((s) => s !== undefined).join('\n\n'),
    tags: [d.tag],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: route.body.required,
            content: { 'application/json': { schema: route.body.schema, ...(d.example !== undefined ? { example: d.example } : {}) } },
          },
        }
      : {}),
    responses,
    'x-graphql-operation': d.document,
  };
}

export function buildOpenApiDocument(compiled: CompiledRoutes): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const route of compiled.routes) {
    const item = (paths[route.declaration.path] ??= {});
    item[route.declaration.method.toLowerCase()] = operationObject(route);
  }
  const sortedPaths = Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b)));
  for (const name of Object.keys(PROBLEM_SCHEMAS)) {
    if (name in compiled.components) throw new Error(`a fragment or type named ${name} collides with the problem schema of the same name`);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Agent platform REST API',
      version,
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The gateway serving this document' }],
    // Either credential; what each route then needs is the scopes of its GraphQL fields.
    security: [{ bearerAuth: [] }, { apiKeyAuth: [] }],
    tags: compiled.tags
      .filter((t) => compiled.routes.some((r) => r.declaration.tag === t.name))
      .map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}) })),
    paths: sortedPaths,
    components: {
      schemas: { ...compiled.components, ...PROBLEM_SCHEMAS },
      responses: RESPONSES,
      securitySchemes: SECURITY_SCHEMES,
    },
  };
}

export interface GeneratedApi {
  compiled: CompiledRoutes;
  document: OpenApiDocument;
  /** Everything wrong with the operations against this schema; empty when all is well. */
  problems: string[];
}

/**
 * Compiles the routes against the schema and builds the document. Request examples are checked
 * against their schemas unless `checkExamples` is false (the gateway, which serves what
 * `npm run openapi` already checked, skips that work on the schema-swap path).
 */
export function generateOpenApi(schema: GraphQLSchema, operations: OperationSet, options: { checkExamples?: boolean } = {}): GeneratedApi {
  const compiled = compileRoutes(schema, operations);
  const problems = compiled.unavailable.map((u) => `${u.declaration.file} (${u.declaration.operationId}): ${u.reasons.join('; ')}`);
  if (options.checkExamples === false) return { compiled, document: buildOpenApiDocument(compiled), problems };
  const validator = new SchemaValidator(compiled.components);
  for (const route of compiled.routes) {
    const { example, operationId, file, parameterExamples } = route.declaration;
    for (const [name, value] of Object.entries(parameterExamples)) {
      const parameter = route.parameters.find((p) => p.name === name && p.in === 'query');
      if (!parameter) {
        problems.push(`${file} (${operationId}): @param-example ${name} is not a query parameter of the route`);
        continue;
      }
      const errors = validator.compile(parameter.schema)(value);
      if (errors.length > 0)
        problems.push(
          `${file} (${operationId}): @param-example ${name} does not match its schema: ${errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`,
        );
    }
    if (example === undefined || !route.body) continue;
    const errors = validator.compile(route.body.schema)(example);
    if (errors.length > 0)
      problems.push(
        `${file} (${operationId}): @example does not match the request body schema: ${errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`,
      );
  }
  return { compiled, document: buildOpenApiDocument(compiled), problems };
}

/** The text written to gateway/rest/generated/openapi.json. */
export function serialiseDocument(document: OpenApiDocument): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
