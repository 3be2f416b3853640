// What is refused before anything runs, with the code a client can branch on.
import { buildSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { checkOperation } from '../../runtime/subscriptions.ts';

const schema = buildSchema(`
  type Query { hello: String }
  type Subscription { ticks(every: Int!): Tick! other: Tick! }
  type Tick { n: Int! }
`);

function refusal(request: Parameters<typeof checkOperation>[1]) {
  const result = checkOperation(schema, request);
  if (!Array.isArray(result)) throw new Error('expected errors');
  return result.map((e) => ({ message: e.message, code: e.extensions.code }));
}

describe('checkOperation', () => {
  it('accepts a valid operation and returns its document, operation and variables', () => {
    const result = checkOperation(schema, {
      query: 'subscription S($e: Int!) { ticks(every: $e) { n } } query Q { hello }',
      operationName: 'S',
      variables: { e: 5 },
    });
    if (Array.isArray(result)) throw new Error(result.map((e) => e.message).join('; '));
    expect(result.operation.operation).toBe('subscription');
    expect(result.operationName).toBe('S');
    expect(result.variables).toEqual({ e: 5 });
  });

  it.each([
    [{ query: 5 }, 'BAD_REQUEST', /non-empty "query"/],
    [{ query: '{ hello }', variables: [1] }, 'BAD_REQUEST', /"variables" must be an object/],
    [{ query: '{ hello }', operationName: 3 }, 'BAD_REQUEST', /"operationName" must be a string/],
    [{ query: 'subscription {' }, 'GRAPHQL_PARSE_FAILED', /Syntax Error/],
    [{ query: 'subscription { nope { n } }' }, 'GRAPHQL_VALIDATION_FAILED', /Cannot query field "nope"/],
    [{ query: 'subscription { ticks(every: 1) { n } other { n } }' }, 'GRAPHQL_VALIDATION_FAILED', /only one top level field/],
    [{ query: 'subscription A { other { n } } subscription B { other { n } }' }, 'OPERATION_RESOLUTION_FAILURE', /Must provide operation name/],
    [{ query: 'subscription A { other { n } }', operationName: 'B' }, 'OPERATION_RESOLUTION_FAILURE', /Unknown operation named "B"/],
    [{ query: 'subscription($e: Int!) { ticks(every: $e) { n } }' }, 'BAD_USER_INPUT', /"\$e" of required type "Int!" was not provided/],
    [{ query: 'subscription($e: Int!) { ticks(every: $e) { n } }', variables: { e: 'x' } }, 'BAD_USER_INPUT', /Int cannot represent non-integer value/],
  ])('refuses %j with %s', (request, code, message) => {
    const errors = refusal(request);
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toEqual({ message: expect.stringMatching(message), code });
  });

  it.each([
    'subscription($s: Boolean!) { other @skip(if: $s) { n } }',
    'subscription($s: Boolean!) { ... @include(if: $s) { other { n } } }',
    'subscription($s: Boolean!) { ...F } fragment F on Subscription { other @include(if: $s) { n } }',
  ])('refuses @skip/@include on a root subscription field (graphql-js 16 would throw): %s', (query) => {
    expect(refusal({ query, variables: { s: true } })).toEqual([
      { message: expect.stringMatching(/must not use `@skip` or `@include`/), code: 'GRAPHQL_VALIDATION_FAILED' },
    ]);
  });

  it('allows @skip/@include below the root field', () => {
    expect(Array.isArray(checkOperation(schema, { query: 'subscription($s: Boolean!) { other { n @skip(if: $s) } }', variables: { s: true } }))).toBe(false);
  });
});
