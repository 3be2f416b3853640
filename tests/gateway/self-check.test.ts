// The start-up self-check: what the fast path and subscription planning rely on of the @apollo
// packages holds for the versions installed, and a change of it is named with package and version.
import { readFileSync } from 'node:fs';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../gateway/auth/principal.ts';
import { contextFor, type GatewayContext } from '../../gateway/context.ts';
import { toGatewaySupergraph } from '../../gateway/auth/supergraph-policy.ts';
import { createPreparedOperations, type PreparedOperations } from '../../gateway/prepared-operations.ts';
import { installedVersion, probeQuery, runSelfCheck, SelfCheckError } from '../../gateway/self-check.ts';
import { plannerAssumptionProblems } from '../../gateway/subscriptions/planning.ts';
import { createLogger } from '../../runtime/logger.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
const logger = createLogger('self-check-test', 'silent');
const supergraphSdl = readFileSync(new URL('../../schema/supergraph.graphql', import.meta.url), 'utf8');
const context = (): GatewayContext => contextFor({ requestId: 'self-check', headers: new HeaderMap(), remoteAddress: '127.0.0.1' }, logger, ANONYMOUS);

describe('gateway start-up self-check', () => {
  let gateway: ApolloGateway;
  let prepared: PreparedOperations;
  let apollo: ApolloServer<GatewayContext>;

  beforeAll(async () => {
    // `{ __typename }` and planning reach no subgraph: none needs to run.
    gateway = new ApolloGateway({ supergraphSdl: toGatewaySupergraph(supergraphSdl), logger });
    prepared = createPreparedOperations({ max: 10, admits: () => true, logger });
    apollo = new ApolloServer<GatewayContext>({ gateway: prepared.wrap(gateway), plugins: [prepared.plugin], logger });
    await apollo.start();
  });
  afterAll(async () => {
    await apollo?.stop();
  });

  it('passes against the installed @apollo packages, which are the ones package.json pins exactly', async () => {
    for (const name of [
      '@apollo/server',
      '@apollo/gateway',
      '@apollo/query-planner',
      '@apollo/federation-internals',
      '@apollo/subgraph',
      '@apollo/composition',
    ]) {
      expect(pkg.dependencies[name], name).toMatch(/^\d+\.\d+\.\d+$/);
      expect(installedVersion(name), name).toBe(pkg.dependencies[name]);
    }
    expect(plannerAssumptionProblems(gateway)).toEqual([]);
    expect(await prepared.selfCheck(apollo, '{ __typename }', context())).toEqual([]);
    await expect(runSelfCheck({ apollo, gateway, prepared, probe: '{ __typename }', context: context() })).resolves.toBeUndefined();
    // The probe leaves nothing behind in the fast path's memory.
    expect(prepared.stats().size).toBe(0);
  });

  it('names @apollo/server and its version when the executor no longer gets the replay slot', async () => {
    // What an Apollo Server that rebuilt the context from its plain properties would do.
    const forgetful = new Proxy(apollo, {
      get(target, property, receiver) {
        if (property !== 'executeOperation') return Reflect.get(target, property, receiver) as unknown;
        return (request: Parameters<typeof apollo.executeOperation>[0], options: { contextValue: GatewayContext }) =>
          target.executeOperation(request, { contextValue: Object.fromEntries(Object.entries(options.contextValue)) as unknown as GatewayContext });
      },
    });
    const problems = await prepared.selfCheck(forgetful, '{ __typename }', context());
    expect(problems).toEqual([expect.stringContaining('replay slot')]);
    const failure = await runSelfCheck({ apollo: forgetful, gateway, prepared, probe: '{ __typename }', context: context() }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(SelfCheckError);
    expect((failure as Error).message).toContain(`@apollo/server ${installedVersion('@apollo/server')}: prepared operations`);
  });

  it('names the planner packages when the live query planner is gone', async () => {
    const planless = { __testing: () => ({ queryPlanner: null }), schema: gateway.schema } as unknown as ApolloGateway;
    expect(plannerAssumptionProblems(planless)).toEqual([expect.stringContaining('queryPlanner is missing')]);
    const failure = await runSelfCheck({ apollo, gateway: planless, prepared, probe: undefined, context: context() }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(SelfCheckError);
    expect((failure as Error).message).toContain(`@apollo/gateway ${installedVersion('@apollo/gateway')}`);
    expect((failure as Error).message).toContain('subscription planning');
  });

  it('probes with { __typename }, or under enforce with a registered query needing no variables', () => {
    expect(probeQuery(null)).toBe('{ __typename }');
    const registered = [
      'mutation M { x }',
      'query Get($id: ID!) { agent(id: $id) { id } }',
      'query List($first: Int) { agents(first: $first) { totalCount } }',
    ];
    expect(probeQuery(registered)).toBe(registered[2]);
    expect(probeQuery(['query Get($id: ID!) { agent(id: $id) { id } }'])).toBeUndefined();
  });
});
