// Field-level enforcement on a small schema. The strongest check is the reference: GraphQL itself,
// executing the original operation with every denied field's resolver throwing. Removing the
// fields first, executing the rest and applying the denials must give the same data (nulls bubbled
// the same way) and errors at the same paths, and the rewritten document must be valid GraphQL.
import { buildSchema, defaultFieldResolver, execute, GraphQLError, parse, print, validate, type DocumentNode, type GraphQLFieldResolver } from 'graphql';
import { describe, expect, it } from 'vitest';
import { applyDenials, authorizeOperation, createAuthorizer, HIDDEN_TYPENAME, type Authorization } from '../../gateway/auth/enforce.ts';
import { ANONYMOUS, type Principal } from '../../gateway/auth/principal.ts';
import { extractAccessPolicy } from '../../gateway/auth/supergraph-policy.ts';

const SDL = /* GraphQL */ `
  schema
    @link(url: "https://specs.apollo.dev/link/v1.0")
    @link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)
    @link(url: "https://specs.apollo.dev/requiresScopes/v0.1", for: SECURITY) {
    query: Query
    mutation: Mutation
  }
  directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
  directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
  directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
  scalar link__Import
  scalar requiresScopes__Scope
  enum link__Purpose { SECURITY EXECUTION }

  interface Node { id: ID! createdBy: String }
  type User implements Node {
    id: ID!
    name: String!
    createdBy: String
    email: String @requiresScopes(scopes: [["users:read"], ["admin"]])
    ssn: String! @requiresScopes(scopes: [["admin"]])
    friends: [User!]!
  }
  type Document implements Node {
    id: ID!
    title: String!
    body: String @authenticated
    createdBy: String @requiresScopes(scopes: [["admin"]])
    owner: User!
  }
  type AdminPanel @authenticated { stats: Int }
  union SearchResult = User | Document
  type Query {
    me: User
    users: [User!]!
    secret: String @requiresScopes(scopes: [["admin"]])
    secretNonNull: String! @requiresScopes(scopes: [["admin"]])
    node(id: ID!): Node
    search: [SearchResult!]!
    adminPanel: AdminPanel!
    hello: String
  }
  type Mutation {
    deleteUser(id: ID!): Boolean @requiresScopes(scopes: [["users:write", "users:read"], ["admin"]])
    ping: String
  }
`;

const schema = buildSchema(SDL);
const policy = extractAccessPolicy(SDL);

const alice = { __typename: 'User', id: 'u1', name: 'Alice', createdBy: 'root', email: 'a@x', ssn: '111', friends: [] as unknown[] };
const bob = { __typename: 'User', id: 'u2', name: 'Bob', createdBy: 'root', email: 'b@x', ssn: '222', friends: [alice] };
const doc = { __typename: 'Document', id: 'd1', title: 'Plan', body: 'secret plan', createdBy: 'alice', owner: alice };

function rootValue(calls: string[] = []) {
  return {
    me: bob,
    users: [alice, bob],
    secret: 's3cret',
    secretNonNull: 'S3CRET',
    node: ({ id }: { id: string }) => [alice, bob, doc].find((n) => n.id === id) ?? null,
    search: [bob, doc],
    adminPanel: { stats: 42 },
    hello: 'world',
    deleteUser: () => {
      calls.push('deleteUser');
      return true;
    },
    ping: () => {
      calls.push('ping');
      return 'pong';
    },
  };
}

const user = (scopes: string[]): Principal => ({ kind: 'user', subject: 'u', tenantId: 't', scopes, expiresAt: null });

/** Which coordinates a principal may not resolve, written out by hand for the reference run. */
function deniedFor(principal: Principal): Set<string> {
  const s = new Set(principal.scopes);
  const denied = new Set<string>();
  const anon = principal.kind === 'anonymous';
  if (!s.has('admin')) for (const c of ['Query.secret', 'Query.secretNonNull', 'User.ssn', 'Document.createdBy']) denied.add(c);
  if (!s.has('admin') && !s.has('users:read')) denied.add('User.email');
  if (!s.has('admin') && !(s.has('users:write') && s.has('users:read'))) denied.add('Mutation.deleteUser');
  if (anon) for (const c of ['Document.body', 'Query.adminPanel']) denied.add(c);
  return denied;
}

const CODE = Symbol('code');

/** GraphQL's own answer: the original operation, with denied fields throwing. */
function reference(document: DocumentNode, principal: Principal, variables?: Record<string, unknown>) {
  const denied = deniedFor(principal);
  const fieldResolver: GraphQLFieldResolver<unknown, unknown> = (source, args, context, info) => {
    if (denied.has(`${info.parentType.name}.${info.fieldName}`)) {
      throw Object.assign(new GraphQLError('denied'), { [CODE]: principal.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN' });
    }
    return defaultFieldResolver(source, args, context, info);
  };
  const result = execute({ schema, document, rootValue: rootValue(), variableValues: variables, fieldResolver }) as {
    data?: unknown;
    errors?: readonly GraphQLError[];
  };
  const codeOf = (e: GraphQLError) => ((e.originalError ?? e) as unknown as Record<symbol, string>)[CODE];
  return { data: result.data, errors: (result.errors ?? []).map((e) => ({ path: e.path, code: codeOf(e) })) };
}

/** Our answer: authorize, execute what is left, apply the denials. */
function enforced(query: string, principal: Principal, variables?: Record<string, unknown>, calls: string[] = []) {
  const document = parse(query);
  const authorization = authorizeOperation({ schema, policy, document, principal, variables: variables ?? null });
  if (authorization.document) expect(validate(schema, authorization.document)).toEqual([]);
  const executed = authorization.document
    ? (execute({ schema, document: authorization.document, rootValue: rootValue(calls), variableValues: variables }) as {
        data?: Record<string, unknown> | null;
      })
    : { data: {} };
  const applied = applyDenials({ data: executed.data ?? null }, authorization);
  // As a client receives it: the errors serialised.
  const result = { ...applied, ...(applied.errors ? { errors: applied.errors.map((e) => (e instanceof GraphQLError ? e.toJSON() : e)) } : {}) };
  return { authorization, result, errors: (result.errors ?? []).map((e) => ({ path: e.path, code: e.extensions?.code })) };
}

function expectSameAsGraphQL(query: string, principal: Principal, variables?: Record<string, unknown>) {
  const ours = enforced(query, principal, variables);
  const ref = reference(parse(query), principal, variables);
  expect(ours.result.data).toEqual(ref.data);
  // graphql-js stops completing a list once one item's error has nulled it, so it may report
  // fewer errors than there are denied places; every one it reports must be among ours.
  expect(ours.errors).toEqual(expect.arrayContaining(ref.errors));
  if (ours.errors.length > ref.errors.length) expect(ref.errors.length).toBeGreaterThan(0);
  expect(JSON.stringify(ours.result.data ?? null)).not.toContain(HIDDEN_TYPENAME);
  return ours;
}

function selectedFields(document: DocumentNode | null): string {
  return document ? print(document) : '';
}

describe('authorizeOperation + applyDenials', () => {
  it('leaves an operation the caller may fully see untouched', () => {
    const document = parse('{ me { name email ssn } secret }');
    const authorization = authorizeOperation({ schema, policy, document, principal: user(['admin']) });
    expect(authorization).toEqual({ document, denials: [], rewritten: false });
    const result = { data: { me: { name: 'x' } } };
    expect(applyDenials(result, authorization)).toBe(result);
  });

  it('nulls a denied nullable field, with FORBIDDEN, the scopes required and the ones missing', () => {
    const { result, authorization } = expectSameAsGraphQL('{ hello secret me { name email } }', user(['users:read']));
    expect(selectedFields(authorization.document)).not.toContain('secret');
    expect(result.data).toEqual({ hello: 'world', secret: null, me: { name: 'Bob', email: 'b@x' } });
    expect(result.errors).toEqual([
      {
        message: 'Not allowed to access Query.secret: requires scope admin',
        path: ['secret'],
        extensions: { code: 'FORBIDDEN', requiredScopes: [['admin']], missingScopes: ['admin'] },
      },
    ]);
  });

  it('says UNAUTHENTICATED to an anonymous caller, for scopes and @authenticated alike', () => {
    const { result } = expectSameAsGraphQL('{ secret node(id: "d1") { id ... on Document { title body } } }', ANONYMOUS);
    expect(result.data).toEqual({ secret: null, node: { id: 'd1', title: 'Plan', body: null } });
    expect(result.errors?.map((e) => [e.path, e.extensions?.code, e.message])).toEqual([
      [['secret'], 'UNAUTHENTICATED', 'Authentication is required to access Query.secret'],
      [['node', 'body'], 'UNAUTHENTICATED', 'Authentication is required to access Document.body'],
    ]);
  });

  it('reports the closest alternative when several scope sets would do', () => {
    const { result } = enforced('mutation { deleteUser(id: "u1") }', user(['users:write']));
    expect(result.errors?.[0]?.extensions).toEqual({
      code: 'FORBIDDEN',
      requiredScopes: [['users:write', 'users:read'], ['admin']],
      missingScopes: ['users:read'],
    });
  });

  it('bubbles a denied non-null field to the nearest nullable parent, through lists, like GraphQL', () => {
    // me is nullable: it becomes null.
    expectSameAsGraphQL('{ me { name ssn } hello }', user([]));
    // users: [User!]! and ssn: String!: the null climbs to data itself.
    const all = expectSameAsGraphQL('{ users { id ssn } hello }', user([]));
    expect(all.result.data).toBeNull();
    expect(all.errors.map((e) => e.path)).toEqual([
      ['users', 0, 'ssn'],
      ['users', 1, 'ssn'],
    ]);
    // Nested lists: each friend is [User!]!, so a friend's ssn nulls its holder's nullable parent.
    expectSameAsGraphQL('{ me { name friends { name ssn } } }', user(['users:read']));
  });

  it('nulls data for a denied non-null root field, and a nullable root field alone', () => {
    const nonNull = expectSameAsGraphQL('{ secretNonNull }', user([]));
    expect(nonNull.authorization.document).toBeNull();
    expect(nonNull.result.data).toBeNull();
    const nullable = expectSameAsGraphQL('{ secret }', user([]));
    expect(nullable.authorization.document).toBeNull();
    expect(nullable.result.data).toEqual({ secret: null });
  });

  it('follows aliases: each response key gets its own null and error', () => {
    const { result } = expectSameAsGraphQL('{ a: secret b: secret me { mail: email n: name } }', user([]));
    expect(result.data).toEqual({ a: null, b: null, me: { mail: null, n: 'Bob' } });
    expect(result.errors?.map((e) => e.path)).toEqual([['a'], ['b'], ['me', 'mail']]);
  });

  it('removes fields inside named fragments used in several places, and drops fragments no longer used', () => {
    const query = `
      query Q { me { ...U friends { ...U } } node(id: "u1") { ... on User { ...Unused } } }
      fragment U on User { name email }
      fragment Unused on User { name }`;
    const { authorization, result } = expectSameAsGraphQL(query, user([]));
    expect(selectedFields(authorization.document)).not.toContain('email');
    expect(result.errors?.map((e) => e.path)).toEqual([
      ['me', 'email'],
      ['me', 'friends', 0, 'email'],
    ]);

    // A fragment spread only inside a removed field is no longer used: it must go (else invalid).
    const dropped = enforced('{ hello adminPanel { ...P } } fragment P on AdminPanel { stats }', ANONYMOUS);
    expect(print(dropped.authorization.document!)).not.toContain('fragment P');
    // A fragment whose every field is removed keeps a placeholder, so its spreads stay valid.
    const emptied = enforced('{ hello ...F } fragment F on Query { secret }', user([]));
    expect(print(emptied.authorization.document!)).toContain(`fragment F on Query {\n  ${HIDDEN_TYPENAME}: __typename\n}`);
    expect(emptied.result.data).toEqual({ hello: 'world', secret: null });
  });

  it('drops fragments that only a removed field used, and variables only a removed field used', () => {
    // $id was used only by the removed deleteUser: its definition goes too (else invalid GraphQL).
    const shared = enforced('mutation($id: ID!) { deleteUser(id: $id) ping } ', user([]), { id: 'u1' });
    expect(print(shared.authorization.document!)).not.toContain('$id');
    const kept = enforced('query($id: ID!) { node(id: $id) { id } secret }', user([]), { id: 'u1' });
    expect(print(kept.authorization.document!)).toContain('$id: ID!');
    expect(kept.result.data).toEqual({ node: { id: 'u1' }, secret: null });

    const calls: string[] = [];
    const m = enforced('mutation($id: ID!, $x: Boolean!) { deleteUser(id: $id) ping @include(if: $x) }', user([]), { id: 'u1', x: true }, calls);
    const printed = print(m.authorization.document!);
    expect(printed).not.toContain('$id');
    expect(printed).toContain('$x: Boolean!');
    expect(calls).toEqual(['ping']);
    expect(m.result.data).toEqual({ deleteUser: null, ping: 'pong' });

    const f = enforced('{ me { ssn2: ssn ...G } hello } fragment G on User { name }', user([]));
    expect(f.result.data).toEqual({ me: null, hello: 'world' });
    // me is still fetched (its other selections are allowed), so G stays.
    expect(print(f.authorization.document!)).toContain('fragment G on User');
    const onlyDenied = enforced('{ hello deleteMe: secret @include(if: true) } ', user([]));
    expect(print(onlyDenied.authorization.document!)).not.toContain('secret');
  });

  it('does not run a denied mutation field, and runs the allowed ones', () => {
    const calls: string[] = [];
    const { result, authorization } = enforced('mutation { deleteUser(id: "u1") ping }', user(['users:read']), undefined, calls);
    expect(calls).toEqual(['ping']);
    expect(selectedFields(authorization.document)).not.toContain('deleteUser');
    expect(result.data).toEqual({ deleteUser: null, ping: 'pong' });
  });

  it('asks nothing when every root field is denied', () => {
    const calls: string[] = [];
    const { authorization, result } = enforced('mutation { deleteUser(id: "u1") }', user([]), undefined, calls);
    expect(authorization.document).toBeNull();
    expect(calls).toEqual([]);
    expect(result.data).toEqual({ deleteUser: null });
    expect(enforced('{ ... on Query { secret } }', user([])).authorization.document).toBeNull();
  });

  it('decides per concrete type in unions and fragments on concrete types', () => {
    const { authorization, result } = expectSameAsGraphQL('{ search { ... on User { name email } ... on Document { title body createdBy } } }', ANONYMOUS);
    // The typename is asked for so the denial lands on the right items, and then removed.
    expect(selectedFields(authorization.document)).toContain(`${HIDDEN_TYPENAME}: __typename`);
    expect(result.data).toEqual({
      search: [
        { name: 'Bob', email: null },
        { title: 'Plan', body: null, createdBy: null },
      ],
    });
    expect(result.errors?.map((e) => e.path)).toEqual([
      ['search', 0, 'email'],
      ['search', 1, 'body'],
      ['search', 1, 'createdBy'],
    ]);
  });

  it('treats an interface field conservatively: denied when any implementation denies it', () => {
    // Document.createdBy needs admin, User.createdBy does not: on the interface, it is denied for both.
    const { result } = enforced('{ a: node(id: "u1") { id createdBy } b: node(id: "d1") { id createdBy } }', user([]));
    expect(result.data).toEqual({ a: { id: 'u1', createdBy: null }, b: { id: 'd1', createdBy: null } });
    expect(result.errors?.map((e) => e.path)).toEqual([
      ['a', 'createdBy'],
      ['b', 'createdBy'],
    ]);
    // Asked on the concrete type, the User one is allowed.
    const precise = expectSameAsGraphQL(
      '{ a: node(id: "u1") { id ... on User { createdBy } ... on Document { createdBy } } b: node(id: "d1") { ... on Document { createdBy } } }',
      user([]),
    );
    expect(precise.result.data).toEqual({ a: { id: 'u1', createdBy: 'root' }, b: { createdBy: null } });
  });

  it('applies type-level rules to every field returning the type', () => {
    expectSameAsGraphQL('{ adminPanel { stats } hello }', ANONYMOUS);
    expect(enforced('{ adminPanel { stats } hello }', ANONYMOUS).result.data).toBeNull();
    expect(enforced('{ adminPanel { stats } }', user([])).result).toEqual({ data: { adminPanel: { stats: 42 } } });
  });

  it('reports nothing for a selection @skip/@include leaves out, but never asks for it either', () => {
    const skipped = enforced('query($s: Boolean!) { hello secret @skip(if: $s) }', user([]), { s: true });
    expect(skipped.result).toEqual({ data: { hello: 'world' }, errors: [] });
    expect(selectedFields(skipped.authorization.document)).not.toContain('secret');
    const included = expectSameAsGraphQL('query($s: Boolean!) { hello secret @skip(if: $s) }', user([]), { s: false });
    expect(included.errors).toHaveLength(1);
    const fragmentSkipped = enforced('{ hello ... on Query @include(if: false) { secret } }', user([]));
    expect(fragmentSkipped.result.errors).toEqual([]);
  });

  it('places nothing under a parent that came back null for another reason', () => {
    const document = parse('{ node(id: "nope") { id ... on User { email } } }');
    const authorization = authorizeOperation({ schema, policy, document, principal: ANONYMOUS });
    const executed = execute({ schema, document: authorization.document!, rootValue: rootValue() }) as { data: Record<string, unknown> };
    expect(applyDenials({ data: executed.data }, authorization)).toEqual({ data: { node: null }, errors: [] });
    // A request that never executed (data undefined) is left alone.
    const requestError = { errors: [{ message: 'bad', extensions: { code: 'BAD_REQUEST' } }] };
    expect(applyDenials(requestError, authorization)).toBe(requestError);
  });

  it('does not modify the result it is given', () => {
    const authorization = authorizeOperation({ schema, policy, document: parse('{ me { name email } }'), principal: ANONYMOUS });
    const result: { data: Record<string, unknown> } = { data: { me: { name: 'Bob' } } };
    const frozen = JSON.stringify(result);
    expect(applyDenials(result, authorization).data).toEqual({ me: { name: 'Bob', email: null } });
    expect(JSON.stringify(result)).toBe(frozen);
  });

  it('refuses the reserved alias and an unknown operation name', () => {
    expect(() => authorizeOperation({ schema, policy, document: parse(`{ ${HIDDEN_TYPENAME}: hello }`), principal: ANONYMOUS })).toThrow(
      expect.objectContaining({ extensions: { code: 'BAD_USER_INPUT' } }),
    );
    expect(() => authorizeOperation({ schema, policy, document: parse('query A { hello }'), operationName: 'B', principal: ANONYMOUS })).toThrow(
      /Unknown operation/,
    );
    expect(() => authorizeOperation({ schema, policy, document: parse('query A { hello } query B { hello }'), principal: ANONYMOUS })).toThrow(
      /name of the operation/,
    );
    const picked = authorizeOperation({ schema, policy, document: parse('query A { hello } query B { secret }'), operationName: 'B', principal: ANONYMOUS });
    expect(picked.document).toBeNull();
    expect(picked.denials.map((d) => d.steps.map((s) => s.key))).toEqual([['secret']]);
  });

  it('keeps introspection and __typename, which carry no data', () => {
    const { result, authorization } = enforced('{ __typename __type(name: "User") { name } me { __typename name } }', ANONYMOUS);
    expect(authorization.rewritten).toBe(false);
    expect(result.data).toEqual({ __typename: 'Query', __type: { name: 'User' }, me: { __typename: 'User', name: 'Bob' } });
  });

  it('describes where each denial lands, for transports that apply it themselves', () => {
    const { authorization } = enforced('{ me { friends { e: email } } search { ... on Document { body } } }', ANONYMOUS);
    const byPath = Object.fromEntries(authorization.denials.map((d: Authorization['denials'][number]) => [d.steps.map((s) => s.key).join('.'), d]));
    expect(byPath['me.friends.e']).toMatchObject({
      types: null,
      steps: [
        { key: 'me', type: 'User' },
        { key: 'friends', type: '[User!]!' },
        { key: 'e', type: 'String' },
      ],
    });
    expect(byPath['search.body']).toMatchObject({ types: ['Document'] });
  });
});

describe('createAuthorizer (authorizeOperation remembered)', () => {
  it('answers as authorizeOperation does, once per document, operation and scope set', () => {
    const authorize = createAuthorizer();
    const document = parse('query A { hello secret me { email } } query B { me { ssn } }');
    for (const [principal, operationName] of [
      [user(['users:read']), 'A'],
      [user(['admin']), 'A'],
      [ANONYMOUS, 'A'],
      [user([]), 'B'],
    ] as const) {
      const first = authorize({ schema, policy, document, operationName, principal });
      expect(first).toEqual(authorizeOperation({ schema, policy, document, operationName, principal }));
      // Another principal object with the same scopes (in another order) gets the same answer object.
      const again = authorize({
        schema,
        policy,
        document,
        operationName,
        principal: principal.kind === 'anonymous' ? ANONYMOUS : user([...principal.scopes].reverse()),
      });
      expect(again).toBe(first);
    }
    // A signed-in caller without scopes is not anonymous.
    const none = authorize({ schema, policy, document, operationName: 'A', principal: user([]) });
    expect(none.denials.map((d) => d.error.code)).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    expect(authorize({ schema, policy, document, operationName: 'A', principal: ANONYMOUS }).denials.map((d) => d.error.code)).toEqual([
      'UNAUTHENTICATED',
      'UNAUTHENTICATED',
    ]);
  });

  it('decides again for another schema or policy, and every time when @skip/@include depend on variables', () => {
    const authorize = createAuthorizer();
    const document = parse('{ hello secret }');
    const first = authorize({ schema, policy, document, principal: user([]) });
    expect(authorize({ schema, policy: extractAccessPolicy(SDL), document, principal: user([]) })).not.toBe(first);
    const otherSchema = buildSchema(SDL);
    expect(authorize({ schema: otherSchema, policy, document, principal: user([]) })).not.toBe(first);

    const conditional = parse('query($s: Boolean!) { hello secret @skip(if: $s) }');
    const skipped = authorize({ schema, policy, document: conditional, variables: { s: true }, principal: user([]) });
    const kept = authorize({ schema, policy, document: conditional, variables: { s: false }, principal: user([]) });
    expect(skipped.denials).toEqual([]);
    expect(kept.denials).toHaveLength(1);
  });

  it('does not remember refusals', () => {
    const authorize = createAuthorizer();
    const document = parse('query A { hello }');
    expect(() => authorize({ schema, policy, document, operationName: 'B', principal: ANONYMOUS })).toThrow(/Unknown operation/);
    expect(() => authorize({ schema, policy, document, operationName: 'B', principal: ANONYMOUS })).toThrow(/Unknown operation/);
    expect(authorize({ schema, policy, document, operationName: 'A', principal: ANONYMOUS }).rewritten).toBe(false);
  });
});
