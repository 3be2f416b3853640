// Routes compiled against the API schema the gateway serves (built by an ApolloGateway from
// schema/supergraph.graphql, as at run time): where variables come from, the JSON Schemas derived
// from GraphQL types and selections, coercion of query text, path matching and error placement.
import { readFileSync } from 'node:fs';
import { buildSchema, type GraphQLSchema } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import { apiSchemaOf, DEFAULT_SUPERGRAPH } from '../../gateway/rest/generate.ts';
import { locateArgument, mapGraphQLErrors } from '../../gateway/rest/graphql-errors.ts';
import { loadOperations, parseOperationFiles } from '../../gateway/rest/operations.ts';
import { generateOpenApi } from '../../gateway/rest/openapi.ts';
import { readQuery } from '../../gateway/rest/params.ts';
import { compileRoutes, type CompiledRoutes, type RouteModel } from '../../gateway/rest/route-model.ts';
import { RouteTable } from '../../gateway/rest/route-table.ts';
import { fieldErrors, parameterError, SchemaValidator } from '../../gateway/rest/validation.ts';

let schema: GraphQLSchema;
let compiled: CompiledRoutes;
const route = (operationId: string): RouteModel => {
  const found = compiled.routes.find((r) => r.declaration.operationId === operationId);
  if (!found) throw new Error(`no route ${operationId}`);
  return found;
};

beforeAll(async () => {
  schema = await apiSchemaOf(readFileSync(DEFAULT_SUPERGRAPH, 'utf8'));
  compiled = compileRoutes(schema, loadOperations());
});

describe('compiling the repository routes', () => {
  it('compiles every route against the supergraph with no problem', () => {
    expect(compiled.unavailable).toEqual([]);
    expect(generateOpenApi(schema, loadOperations()).problems).toEqual([]);
  });

  it('takes path placeholders from the path, the other GET variables from the query string', () => {
    const list = route('ListAgents');
    expect(list.parameters.map((p) => [p.name, p.in, p.style, p.required])).toEqual([
      ['status', 'query', 'form', false],
      ['skillTag', 'query', 'form', false],
      ['label', 'query', 'deepObject', false],
      ['text', 'query', 'form', false],
      ['first', 'query', 'form', false],
      ['after', 'query', 'form', false],
    ]);
    // The argument's SDL default and description are carried over to the parameter.
    expect(list.parameters.find((p) => p.name === 'first')?.schema).toMatchObject({ type: 'integer', default: 20 });
    expect(list.parameters.find((p) => p.name === 'skillTag')?.description).toBe('Agents having a skill with this tag.');
    expect(list.body).toBeUndefined();
    expect(route('GetAgent').parameters).toMatchObject([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
  });

  it('makes a single input-object variable the whole body, and other body variables its properties', () => {
    expect(route('RegisterAgent').body).toMatchObject({
      mode: 'whole',
      variables: ['input'],
      required: true,
      schema: { $ref: '#/components/schemas/RegisterAgentInput' },
    });
    const update = route('UpdateAgent');
    expect(update.body).toMatchObject({ mode: 'whole', variables: ['input'] });
    expect(update.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(['path:id', 'query:expectedVersion']);
    const claim = route('ClaimTask').body;
    // Every claim variable is optional (an agent's credential names its agent and tags), so the body is too.
    expect(claim).toMatchObject({ mode: 'properties', variables: ['agentId', 'skillTags', 'leaseSeconds'], required: false });
    expect(claim?.schema).toMatchObject({
      type: 'object',
      additionalProperties: false,
      properties: { leaseSeconds: { type: ['integer', 'null'], default: 60 }, skillTags: { type: ['array', 'null'], items: { type: 'string' } } },
    });
    expect(claim?.schema).not.toHaveProperty('required');
    const complete = route('CompleteTask').body;
    expect(complete?.schema).toMatchObject({ type: 'object', properties: { agentId: { type: ['string', 'null'] } } });
    expect(route('RecordHeartbeat').body).toBeUndefined();
  });

  it('derives response schemas from the selection: fragments as components, nullability, enums, scalars', () => {
    expect(route('GetAgent').response).toEqual({ $ref: '#/components/schemas/Agent' });
    expect(route('GetAgent')).toMatchObject({ nullable: true, resourceName: 'Agent', responseKey: 'agent' });
    const agent = compiled.components.Agent;
    expect(agent?.required).toContain('lastHeartbeatAt');
    expect(agent?.additionalProperties).toBe(false);
    expect(agent?.properties).toMatchObject({
      description: { type: ['string', 'null'] },
      lastHeartbeatAt: { type: ['string', 'null'], format: 'date-time' },
      createdAt: { type: 'string', format: 'date-time' },
      status: { $ref: '#/components/schemas/AgentStatus' },
      skills: { type: 'array', items: { type: 'object', required: expect.arrayContaining(['id', 'tags']) } },
      provider: { type: ['object', 'null'] },
      version: { type: 'integer', format: 'int32', description: 'Incremented by every change; pass it as expectedVersion to update safely.' },
    });
    // JSON is any value, null included.
    expect(agent?.properties?.card).toEqual({ description: 'The A2A Agent Card the agent was registered from, if any, as given.' });
    expect(compiled.components.AgentStatus).toMatchObject({ type: 'string', enum: ['REGISTERED', 'ACTIVE', 'PAUSED', 'RETIRED'] });
    expect(route('ListAgents').response).toMatchObject({
      type: 'object',
      required: ['totalCount', 'nodes', 'pageInfo'],
      properties: {
        nodes: { type: 'array', items: { $ref: '#/components/schemas/Agent' } },
        pageInfo: { properties: { endCursor: { type: ['string', 'null'] } } },
      },
    });
    // A nullable input object is a reference or null.
    expect(compiled.components.UpdateAgentInput?.properties?.provider).toEqual({
      anyOf: [{ $ref: '#/components/schemas/AgentProviderInput' }, { type: 'null' }],
    });
  });

  it('lists a route whose operation does not fit the schema as unavailable, with the reason, keeping the others', () => {
    const operations = parseOperationFiles([
      {
        name: 'odd.graphql',
        text: `# @route GET /v1/odd/{id}
query Odd($id: ID!) { agent(id: $id) { id colour } }
# @route GET /v1/fine/{id}
query Fine($id: ID!) { agent(id: $id) { id } }`,
      },
    ]);
    const result = compileRoutes(schema, operations);
    expect(result.routes.map((r) => r.declaration.operationId)).toEqual(['Fine']);
    expect(result.unavailable).toEqual([
      { declaration: expect.objectContaining({ operationId: 'Odd' }), reasons: ['Cannot query field "colour" on type "Agent".'] },
    ]);
  });

  it('refuses query parameters that cannot be written as text', () => {
    const small = buildSchema(`scalar JSON
      input Deep { inner: Inner }
      input Inner { x: Int }
      type Query { thing(data: JSON, deep: Deep): Int }`);
    const operations = parseOperationFiles([
      { name: 't.graphql', text: '# @route GET /v1/t\nquery T($data: JSON, $deep: Deep) { thing(data: $data, deep: $deep) }' },
    ]);
    const result = compileRoutes(small, operations);
    expect(result.unavailable[0]?.reasons).toEqual([
      'query parameter data: JSON values cannot travel in the query string; send them in a body',
      'query parameter deep: Deep.inner is not a scalar, enum or list of them, so Deep cannot be a query parameter',
    ]);
  });
});

describe('query strings', () => {
  it('coerces text by the GraphQL type and builds deepObject values', () => {
    const list = route('ListAgents');
    const read = readQuery(new URLSearchParams('first=10&status=ACTIVE&label[key]=team&label[value]=ml&text=a%20b'), list.parameters);
    expect(read).toEqual({ values: { first: 10, status: 'ACTIVE', label: { key: 'team', value: 'ml' }, text: 'a b' }, errors: [] });
    const claim = readQuery(new URLSearchParams('first=1.5&after=x&after=y&colour=red'), list.parameters);
    expect(claim.values).toEqual({ first: '1.5' });
    expect(claim.errors).toEqual([
      { parameter: 'after', detail: 'is given more than once' },
      { parameter: 'colour', detail: expect.stringMatching(/^is not a parameter of this route/) },
    ]);
  });

  it('does not take inherited object keys for fields of a deepObject', () => {
    const read = readQuery(new URLSearchParams('label[__proto__]=x&label[constructor]=y'), route('ListAgents').parameters);
    expect(read.values).toEqual({});
    expect(read.errors.map((e) => e.parameter)).toEqual(['label[__proto__]', 'label[constructor]']);
  });

  it('reports what the JSON Schema refuses, naming the parameter', () => {
    const validator = new SchemaValidator(compiled.components);
    const label = route('ListAgents').parameters.find((p) => p.name === 'label');
    const errors = validator.compile(label?.schema ?? {})({ value: 'ml' });
    expect(fieldErrors(errors, parameterError('label'))).toEqual([{ parameter: 'label[key]', detail: 'is required' }]);
  });
});

describe('path matching', () => {
  const table = new RouteTable([
    { method: 'GET', path: '/v1/tasks/{id}' },
    { method: 'POST', path: '/v1/tasks/claim' },
    { method: 'POST', path: '/v1/tasks/{id}/cancel' },
    { method: 'GET', path: '/v1/tasks' },
    { method: 'POST', path: '/v1/tasks' },
  ]);

  it('prefers literal segments, extracts placeholders and answers 405 with the allowed methods', () => {
    expect(table.match('POST', '/v1/tasks/claim')).toMatchObject({ kind: 'found', entry: { path: '/v1/tasks/claim' } });
    expect(table.match('GET', '/v1/tasks/claim')).toEqual({ kind: 'method-not-allowed', allowed: ['POST'] });
    expect(table.match('GET', '/v1/tasks/abc')).toMatchObject({ kind: 'found', params: { id: 'abc' } });
    expect(table.match('DELETE', '/v1/tasks')).toEqual({ kind: 'method-not-allowed', allowed: ['GET', 'POST'] });
    expect(table.match('GET', '/v1/tasks/')).toEqual({ kind: 'none' });
    expect(table.match('GET', '/v1/tasks/a/b')).toEqual({ kind: 'none' });
    expect(table.prefixes).toEqual(new Set(['v1']));
  });
});

describe('GraphQL errors as problems', () => {
  it('points argument paths named by resolvers at the request value that fed them', () => {
    expect(locateArgument(route('RegisterAgent'), 'input.skills[2].id')).toEqual({ pointer: '#/skills/2/id' });
    // SubmitTaskInput has its own `input` field: the path is read relative to the body first.
    expect(locateArgument(route('SubmitTask'), 'input')).toEqual({ pointer: '#/input' });
    expect(locateArgument(route('SubmitTask'), 'retryPolicy.maximumAttempts')).toEqual({ pointer: '#/retryPolicy/maximumAttempts' });
    expect(locateArgument(route('ReportTaskProgress'), 'taskId')).toEqual({ parameter: 'id' });
    expect(locateArgument(route('ReportTaskProgress'), 'percent')).toEqual({ pointer: '#/percent' });
    expect(locateArgument(route('RegisterAgentFromCard'), 'card.skills[0].tags')).toEqual({ pointer: '#/card/skills/0/tags' });
    expect(locateArgument(route('ListAgents'), 'filter.label.key')).toEqual({ parameter: 'label[key]' });
    expect(locateArgument(route('ListAgents'), 'somethingElse')).toBeUndefined();
  });

  it('chooses the status the client must act on first and maps every code', () => {
    const model = route('GetAgent');
    const err = (code: string, message = code) => ({ message, extensions: { code } });
    expect(mapGraphQLErrors(model, [err('NOT_FOUND')], undefined)).toMatchObject({ status: 404, code: 'NOT_FOUND', detail: 'NOT_FOUND' });
    expect(mapGraphQLErrors(model, [err('CONFLICT')], undefined).status).toBe(409);
    expect(mapGraphQLErrors(model, [err('FORBIDDEN')], undefined).status).toBe(403);
    expect(mapGraphQLErrors(model, [err('SUBGRAPH_UNAVAILABLE'), err('UNAUTHENTICATED')], undefined)).toMatchObject({
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: '2 errors: SUBGRAPH_UNAVAILABLE; UNAUTHENTICATED',
    });
    expect(mapGraphQLErrors(model, [err('DOWNSTREAM_SERVICE_ERROR')], undefined).status).toBe(502);
    expect(mapGraphQLErrors(model, [err('INTERNAL_SERVER_ERROR')], undefined).status).toBe(500);
    // A code the facade does not know keeps the status a plugin gave the response.
    expect(mapGraphQLErrors(model, [err('QUOTA_EXCEEDED')], 429).status).toBe(429);
    // Codes are arbitrary strings from any subgraph: inherited object keys are not statuses.
    expect(mapGraphQLErrors(model, [err('constructor')], undefined).status).toBe(500);
    const input = mapGraphQLErrors(model, [{ message: 'id must be a UUID', extensions: { code: 'BAD_USER_INPUT', argument: 'id' } }], 200);
    expect(input).toEqual({ status: 400, code: 'BAD_USER_INPUT', detail: 'id must be a UUID', errors: [{ parameter: 'id', detail: 'id must be a UUID' }] });
  });
});
