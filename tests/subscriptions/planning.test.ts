// Subscriptions are planned by the gateway's own query planner: a Subscription node whose primary
// fetch goes to the owning subgraph, turned into the per-event plan; plans are cached per
// operation and replaced with the supergraph.
import { appendFileSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApolloGateway } from '@apollo/gateway';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { Planning } from '../../gateway/subscriptions/planning.ts';
import { readSupergraph, watchedSupergraph } from '../../gateway/supergraph.ts';
import { silentLogger } from '../support/databases.ts';
import { waitFor } from './support.ts';

let dir: string;
let path: string;
let gateway: ApolloGateway;

// The gateway loads the supergraph the way the served one does (gateway/supergraph.ts), from a
// file the last test changes to make it reload.
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'planning-'));
  path = join(dir, 'supergraph.graphql');
  copyFileSync(DEFAULT_SUPERGRAPH_PATH, path);
  gateway = new ApolloGateway({
    logger: silentLogger,
    supergraphSdl: watchedSupergraph({ path, initialSdl: await readSupergraph(path), watch: true, pollMs: 50, debounceMs: 20, logger: silentLogger }),
  });
  await gateway.load();
});

afterAll(async () => {
  await gateway.stop();
  rmSync(dir, { recursive: true, force: true });
});

const QUERY = 'subscription Watch($a: ID) { taskUpdated(agentId: $a) { kind task { state agent { name health } } } }';

describe('subscription planning', () => {
  it('plans the primary fetch to the owning subgraph and the rest for every event', () => {
    const supergraph = new Planning(gateway).current();
    const plan = supergraph.plan(parse(QUERY), QUERY, 'Watch');
    expect(plan.primary).toMatchObject({ kind: 'Fetch', serviceName: 'orchestration', operationKind: 'subscription', variableUsages: ['a'] });
    expect(plan.primary.operation).toMatch(/^subscription Watch__orchestration__0\(\$a:ID\)\{taskUpdated\(agentId:\$a\)/);
    expect(plan.perEvent.node).toMatchObject({
      kind: 'Sequence',
      nodes: [
        plan.primary,
        { kind: 'Sequence', nodes: [{ kind: 'Flatten', path: ['taskUpdated', 'task', 'agent'], node: { kind: 'Fetch', serviceName: 'agents' } }] },
      ],
    });
  });

  it('plans a subscription served by one subgraph alone as just its primary fetch', () => {
    const query = 'subscription { agentHeartbeat { agent { name } } }';
    const plan = new Planning(gateway).current().plan(parse(query), query, undefined);
    expect(plan.primary.serviceName).toBe('agents');
    expect(plan.perEvent.node).toEqual({ kind: 'Sequence', nodes: [plan.primary] });
  });

  it('caches plans per operation text and name, and starts over when the supergraph changes', async () => {
    const planning = new Planning(gateway);
    const before = planning.current();
    const first = before.plan(parse(QUERY), QUERY, 'Watch');
    expect(before.plan(parse(QUERY), QUERY, 'Watch')).toBe(first);
    expect(planning.current()).toBe(before);

    appendFileSync(path, '\n# reloaded\n');
    const after = await waitFor('the reloaded supergraph', () => {
      const current = planning.current();
      return current !== before && current;
    });
    expect(after).not.toBe(before);
    expect(after.id).toBeGreaterThan(before.id);
    const replanned = after.plan(parse(QUERY), QUERY, 'Watch');
    expect(replanned).not.toBe(first);
    expect(replanned.primary.operation).toBe(first.primary.operation);
  });
});
