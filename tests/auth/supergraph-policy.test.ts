// The access policy read from the composed supergraph, and the rewrite that lets the stock
// ApolloGateway load a supergraph with @authenticated / @requiresScopes.
import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { ApolloGateway } from '@apollo/gateway';
import { Supergraph } from '@apollo/federation-internals';
import { parse, type GraphQLSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { authorizeOperation } from '../../gateway/auth/enforce.ts';
import { ANONYMOUS } from '../../gateway/auth/principal.ts';
import { extractAccessPolicy, toGatewaySupergraph } from '../../gateway/auth/supergraph-policy.ts';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';

const composed = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const ADMIN = { authenticated: true, scopes: [[['admin']]] };

async function loadGateway(supergraphSdl: string): Promise<GraphQLSchema> {
  const gateway = new ApolloGateway({ supergraphSdl, logger: quiet });
  try {
    return (await gateway.load()).schema;
  } finally {
    await gateway.stop();
  }
}

function compose(subgraphs: Record<string, string>): string {
  const result = composeServices(Object.entries(subgraphs).map(([name, sdl]) => ({ name, url: `http://${name}.example/graphql`, typeDefs: parse(sdl) })));
  if (result.errors) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.supergraphSdl;
}

describe('the access policy of the composed supergraph', () => {
  it('requires admin for the API key operations and the domain scopes for the rest', () => {
    const policy = extractAccessPolicy(composed);
    for (const coordinate of ['Query.apiKeys', 'Query.apiKey', 'Mutation.createApiKey', 'Mutation.revokeApiKey']) {
      expect(policy.fields.get(coordinate), coordinate).toEqual(ADMIN);
    }
    const signedIn = (scope: string) => ({ authenticated: true, scopes: [[[scope]]] });
    expect(policy.fields.get('Query.agents')).toEqual(signedIn('agents:read'));
    expect(policy.fields.get('Mutation.registerAgent')).toEqual(signedIn('agents:write'));
    expect(policy.fields.get('Subscription.agentHeartbeat')).toEqual(signedIn('agents:read'));
    expect(policy.fields.get('Query.tasks')).toEqual(signedIn('tasks:read'));
    expect(policy.fields.get('Mutation.claimTask')).toEqual(signedIn('tasks:write'));
    expect(policy.fields.get('Subscription.taskUpdated')).toEqual(signedIn('tasks:read'));
    // Fields crossing into another domain need that domain's scope too.
    expect(policy.fields.get('Task.agent')).toEqual({ authenticated: false, scopes: [[['agents:read']]] });
    expect(policy.fields.get('Agent.tasks')).toEqual({ authenticated: false, scopes: [[['tasks:read']]] });
    expect(policy.fields.get('Query.verifyApiKey')).toBeUndefined();
    expect(policy.types.size).toBe(0);
  });

  it('follows renamed imports in the subgraphs, and type-level rules', () => {
    const supergraph = compose({
      a: `extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", { name: "@authenticated", as: "@signedIn" }, { name: "@requiresScopes", as: "@needs" }])
          type Query { open: String  closed: String @signedIn  scoped: Secret @needs(scopes: [["read", "write"], ["admin"]]) }
          type Secret @signedIn { value: String @needs(scopes: [["admin"]]) }`,
    });
    const policy = extractAccessPolicy(supergraph);
    expect(policy.fields.get('Query.closed')).toEqual({ authenticated: true, scopes: [] });
    expect(policy.fields.get('Query.scoped')).toEqual({ authenticated: false, scopes: [[['read', 'write'], ['admin']]] });
    expect(policy.fields.get('Secret.value')).toEqual({ authenticated: false, scopes: [[['admin']]] });
    expect(policy.types.get('Secret')).toEqual({ authenticated: true, scopes: [] });
    expect(policy.fields.get('Query.open')).toBeUndefined();
  });

  it('follows renames made in the supergraph’s own @link (as, import), and a renamed @link', () => {
    const sdl = `
      schema
        @core(url: "https://specs.apollo.dev/link/v1.0", as: "core")
        @core(url: "https://specs.apollo.dev/authenticated/v0.1", as: "authn", for: SECURITY)
        @core(url: "https://specs.apollo.dev/requiresScopes/v0.1", import: [{ name: "@requiresScopes", as: "@needs" }], for: SECURITY)
      { query: Query }
      type Query { a: String @authn  b: String @needs(scopes: [["x"]])  c: String @authenticated @requiresScopes(scopes: [["y"]]) }`;
    const policy = extractAccessPolicy(sdl);
    expect(policy.fields.get('Query.a')).toEqual({ authenticated: true, scopes: [] });
    expect(policy.fields.get('Query.b')).toEqual({ authenticated: false, scopes: [[['x']]] });
    // The default names mean nothing once renamed.
    expect(policy.fields.get('Query.c')).toBeUndefined();
  });

  it('finds nothing in a supergraph without the features, even with look-alike directives', () => {
    const policy = extractAccessPolicy('directive @authenticated on FIELD_DEFINITION\ntype Query { a: String @authenticated }');
    expect(policy.fields.size + policy.types.size).toBe(0);
  });
});

describe('toGatewaySupergraph', () => {
  it('is needed: the stock gateway refuses the composed supergraph as it is', () => {
    expect(composed).toContain('@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)');
    expect(() => Supergraph.build(composed)).toThrow(/authenticated\/v0\.1 is for: SECURITY but is unsupported/);
  });

  it('removes the purpose from those two links only, leaving every other byte as it was', () => {
    const rewritten = toGatewaySupergraph(composed);
    expect(rewritten).toContain('@link(url: "https://specs.apollo.dev/authenticated/v0.1")');
    expect(rewritten).toContain('@link(url: "https://specs.apollo.dev/requiresScopes/v0.1")');
    expect(rewritten).toContain('@link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)');
    expect(rewritten).toContain('@link(url: "https://specs.apollo.dev/join/v0.4", for: EXECUTION)');
    expect(composed.length - rewritten.length).toBe(2 * ', for: SECURITY'.length);
    expect(toGatewaySupergraph(rewritten)).toBe(rewritten);
    // The rules are still there to read.
    expect(extractAccessPolicy(rewritten)).toEqual(extractAccessPolicy(composed));
  });

  it('gives a supergraph ApolloGateway loads, whose API schema hides the @inaccessible verification', async () => {
    const rewritten = toGatewaySupergraph(composed);
    expect(() => Supergraph.build(rewritten)).not.toThrow();
    const schema = await loadGateway(rewritten);
    expect(schema.getQueryType()?.getFields().apiKeys).toBeDefined();
    expect(schema.getMutationType()?.getFields().createApiKey).toBeDefined();
    expect(schema.getQueryType()?.getFields().verifyApiKey).toBeUndefined();
    expect(schema.getType('ApiKeyPrincipal')).toBeUndefined();
  });

  it('leaves other security features refused, so no access rule is silently dropped', () => {
    const withPolicy = composed.replace(
      '@link(url: "https://specs.apollo.dev/requiresScopes/v0.1", for: SECURITY)',
      '@link(url: "https://specs.apollo.dev/requiresScopes/v0.1", for: SECURITY)\n  @link(url: "https://specs.apollo.dev/policy/v0.1", for: SECURITY)',
    );
    expect(() => Supergraph.build(toGatewaySupergraph(withPolicy))).toThrow(/policy\/v0\.1 is for: SECURITY but is unsupported/);
  });

  it('together with enforce.ts, protects the admin operations of the real API schema', async () => {
    const rewritten = toGatewaySupergraph(composed);
    const schema = await loadGateway(rewritten);
    const policy = extractAccessPolicy(rewritten);
    const document = parse('{ agents { totalCount } apiKeys { totalCount } }');
    const anonymous = authorizeOperation({ schema, policy, document, principal: ANONYMOUS });
    expect(anonymous.denials.map((d) => [d.steps.map((s) => s.key), d.error.code])).toEqual([
      [['agents'], 'UNAUTHENTICATED'],
      [['apiKeys'], 'UNAUTHENTICATED'],
    ]);
    const reader = authorizeOperation({
      schema,
      policy,
      document,
      principal: { kind: 'user', subject: 's', tenantId: 't', scopes: ['agents:read'], expiresAt: null },
    });
    expect(reader.denials).toHaveLength(1);
    expect(reader.denials[0]?.error).toMatchObject({ code: 'FORBIDDEN', missingScopes: ['admin'] });
    const admin = authorizeOperation({
      schema,
      policy,
      document,
      principal: { kind: 'user', subject: 's', tenantId: 't', scopes: ['admin', 'agents:read'], expiresAt: null },
    });
    expect(admin.rewritten).toBe(false);
  });
});
