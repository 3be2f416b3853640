// Operation limits (gateway/limits/armor.ts) against the real API schema, and inside a real
// ApolloServer spoken to over its HTTP request handler.
import { readFileSync } from 'node:fs';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { getIntrospectionQuery, parse, type GraphQLSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toGatewaySupergraph } from '../../gateway/auth/supergraph-policy.ts';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { apolloLimits, checkOperationLimits } from '../../gateway/limits/armor.ts';
import { loadLimitsConfig, type QueryLimits } from '../../gateway/limits/config.ts';

const defaults = loadLimitsConfig({}).query;
let schema: GraphQLSchema;

beforeAll(async () => {
  const gateway = new ApolloGateway({
    supergraphSdl: toGatewaySupergraph(readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8')),
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  schema = (await gateway.load()).schema;
  await gateway.stop();
});

function refusal(query: string, limits: QueryLimits = defaults): Record<string, unknown>[] {
  const check = checkOperationLimits(schema, query, limits);
  if (check.ok) throw new Error('expected the limits to refuse the operation');
  return check.errors.map((e) => ({ message: e.message, ...e.extensions }));
}

/** `depth` levels of agent → tasks → agent …, valid against the schema. */
function deepQuery(depth: number): string {
  let inner = 'id';
  for (let level = 0; level < depth; level++) inner = level % 2 === 0 ? `agent { ${inner} }` : `tasks { nodes { ${inner} } }`;
  return `{ task(id: "00000000-0000-0000-0000-000000000000") { ${inner} } }`;
}

describe('operation limits', () => {
  it('have defaults every documented query and a full introspection pass', () => {
    const documented = [
      '{ agents(filter: { status: ACTIVE }, first: 10) { totalCount nodes { name status health skills { name tags } activeTaskCount tasks(first: 5) { nodes { title state } } } pageInfo { hasNextPage endCursor } } }',
      'mutation Work($agent: ID!) { claimTask(agentId: $agent, skillTags: ["summarize"], leaseSeconds: 60) { id title input attempts leaseExpiresAt } }',
      '{ task(id: "x") { title state progress { percent message } agent { name health } workflowRun { status } } }',
      `{ agents(first: 20) { totalCount nodes { name status tasks { nodes { title state } } } }
         tasks(first: 50) { nodes { state agent { name } } }
         workflowRuns { nodes { status steps { stepId status } } } }`,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id name scopes prefix createdAt } } }',
      getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true }),
    ];
    for (const query of documented) {
      const check = checkOperationLimits(schema, query, defaults);
      expect(check.ok ? [] : check.errors.map((e) => e.message), query.slice(0, 60)).toEqual([]);
    }
    expect(defaults).toEqual({ maxDepth: 12, maxAliases: 15, maxDirectives: 50, maxTokens: 2000, maxCost: 20000 });
  });

  it('refuse a depth bomb', () => {
    // task, then 3 × agent and 3 × tasks.nodes, then id: depth 11.
    expect(checkOperationLimits(schema, deepQuery(6), defaults).ok).toBe(true);
    // So deep a query is also too costly: every limit it breaks is reported.
    expect(refusal(deepQuery(40))).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          code: 'GRAPHQL_VALIDATION_FAILED',
          limit: 'maxDepth',
          max: 12,
          message: expect.stringMatching(/^Query depth limit of 12 exceeded, found \d+\.$/),
        }),
      ]),
    );
    // Fragments do not hide depth.
    const viaFragments = `{ task(id: "x") { ...A } } fragment A on Task { agent { tasks { nodes { ...B } } } } fragment B on Task { agent { tasks { nodes { agent { tasks { nodes { agent { tasks { nodes { agent { id } } } } } } } } } } }`;
    expect(refusal(viaFragments).map((e) => e.limit)).toContain('maxDepth');
  });

  it('refuse an alias bomb', () => {
    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: agents { totalCount }`).join(' ')} }`;
    expect(checkOperationLimits(schema, aliases(15), defaults).ok).toBe(true);
    expect(refusal(aliases(16))).toEqual([expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED', limit: 'maxAliases', max: 15 })]);
  });

  it('refuse a directive bomb', () => {
    const query = `{ agents { totalCount ${'@include(if: true) '.repeat(51)} } }`;
    expect(refusal(query)).toEqual([expect.objectContaining({ limit: 'maxDirectives', max: 50 })]);
  });

  it('refuse a cost bomb that stays within depth and aliases', () => {
    const fields = 'id name description agentVersion endpointUrl status health heartbeatIntervalSeconds lastHeartbeatAt createdAt updatedAt version';
    const wide = `{ agents { nodes { ${fields} tasks { nodes { id title state agent { ${fields} tasks { nodes { id title state agent { ${fields} } } } } } } } } }`;
    const errors = refusal(wide, { ...defaults, maxCost: 300 });
    expect(errors).toEqual([
      expect.objectContaining({ limit: 'maxCost', max: 300, message: expect.stringMatching(/^Query Cost limit of 300 exceeded, found [\d.]+\.$/) }),
    ]);
    expect(checkOperationLimits(schema, wide, defaults).ok).toBe(true);
  });

  it('stop parsing a token bomb at the limit', () => {
    const bomb = `{ agents { ${'totalCount '.repeat(5000)} } }`;
    const started = process.hrtime.bigint();
    expect(refusal(bomb)).toEqual([
      {
        code: 'GRAPHQL_PARSE_FAILED',
        limit: 'maxTokens',
        max: 2000,
        message: expect.stringMatching(/^Syntax Error: Document contains more tha[nt] 2000 tokens\. Parsing aborted\.$/),
      },
    ]);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(200);
    expect(refusal('{ agents { ')[0]).toMatchObject({ code: 'GRAPHQL_PARSE_FAILED' });
    expect(refusal('{ agents { ')[0]).not.toHaveProperty('limit');
  });

  it('check a parsed document too (transports that parse themselves)', () => {
    const check = checkOperationLimits(schema, parse(deepQuery(40)), defaults);
    expect(check.ok).toBe(false);
    const fine = parse('{ agents { totalCount } }');
    expect(checkOperationLimits(schema, fine, defaults)).toEqual({ ok: true, document: fine });
  });
});

describe('operation limits in Apollo Server', () => {
  let apollo: ApolloServer;
  const limits: QueryLimits = { maxDepth: 3, maxAliases: 2, maxDirectives: 2, maxTokens: 60, maxCost: 1000 };

  beforeAll(async () => {
    apollo = new ApolloServer({
      typeDefs: 'type Query { me: User } type User { name: String friend: User }',
      resolvers: { Query: { me: () => ({ name: 'Ann' }) } },
      ...apolloLimits(limits, { production: true }),
    });
    await apollo.start();
  });
  afterAll(() => apollo.stop());

  async function post(body: unknown) {
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body },
      context: async () => ({}),
    });
    const text = response.body.kind === 'complete' ? response.body.string : '';
    return {
      status: response.status ?? 200,
      body: JSON.parse(text) as { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] },
    };
  }

  it('answers within the limits', async () => {
    expect(await post({ query: '{ me { name friend { name } } }' })).toEqual({ status: 200, body: { data: { me: { name: 'Ann', friend: null } } } });
  });

  it('refuses depth, alias and directive bombs with 400 and the limit that was hit', async () => {
    const deep = await post({ query: '{ me { friend { friend { friend { name } } } } }' });
    expect(deep.status).toBe(400);
    expect(deep.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', limit: 'maxDepth', max: 3 });
    const aliased = await post({ query: '{ a: me { name } b: me { name } c: me { name } }' });
    expect(aliased.body.errors?.map((e) => e.extensions?.limit)).toEqual(['maxAliases']);
    const directives = await post({ query: '{ me { name @include(if: true) friend @skip(if: false) { name @include(if: true) } } }' });
    expect(directives.body.errors?.map((e) => e.extensions?.limit)).toEqual(['maxDirectives']);
  });

  it('refuses a token bomb as a parse failure', async () => {
    const res = await post({ query: `{ me { ${'name '.repeat(100)} } }` });
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]).toMatchObject({
      message: expect.stringMatching(/Document contains more tha[nt] 60 tokens/),
      extensions: { code: 'GRAPHQL_PARSE_FAILED' },
    });
  });

  it('refuses batches, and hides field suggestions in production', async () => {
    const batch = await post([{ query: '{ me { name } }' }, { query: '{ me { name } }' }]);
    expect(batch.status).toBe(400);
    const typo = await post({ query: '{ me { nam } }' });
    expect(typo.body.errors?.[0]?.message).toBe('Cannot query field "nam" on type "User".');
  });
});
