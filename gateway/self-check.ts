// The gateway leans on a few internals of the @apollo packages (package.json pins them exactly):
// the prepared-operations fast path on Apollo Server's executionDidStart hook and on how it hands
// the request context to the gateway executor; subscription planning on @apollo/gateway's live
// query planner and the plan shapes of @apollo/query-planner. An upgrade that breaks one of
// these would not fail a type check: it would run mutations twice or plan nothing. So the gateway
// checks them on itself at start, and refuses to start with the package and version to blame.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ApolloGateway } from '@apollo/gateway';
import type { ApolloServer } from '@apollo/server';
import { Kind, parse, type DocumentNode } from 'graphql';
import type { GatewayContext } from './context.ts';
import type { PreparedOperations } from './prepared-operations.ts';
import { plannerAssumptionProblems } from './subscriptions/planning.ts';

const require = createRequire(import.meta.url);

/** The installed version of a package, read from its package.json (whatever its exports allow). */
export function installedVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    for (;;) {
      try {
        const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (manifest.name === name) return manifest.version ?? 'unknown';
      } catch {
        // No package.json at this level: keep walking up.
      }
      const parent = dirname(dir);
      if (parent === dir) return 'unknown';
      dir = parent;
    }
  } catch {
    return 'not installed';
  }
}

export class SelfCheckError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `Gateway start-up self-check failed: an @apollo package no longer behaves as this gateway relies on.\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        'Install the versions package.json pins (npm ci). If you upgraded on purpose, adapt the module named above; PREPARED_OPERATIONS_MAX=0 turns the fast path off.',
    );
    this.name = 'SelfCheckError';
  }
}

export interface SelfCheckTarget {
  apollo: ApolloServer<GatewayContext>;
  gateway: ApolloGateway;
  prepared: PreparedOperations;
  /** A query the gateway admits, with no required variables (probeQuery); undefined skips the fast path's check. */
  probe: string | undefined;
  /** An anonymous context for the probe: it reaches no subgraph. */
  context: GatewayContext;
}

/** Throws SelfCheckError listing every assumption that no longer holds, each with its package and version. */
export async function runSelfCheck(target: SelfCheckTarget): Promise<void> {
  const problems: string[] = [];
  const blame = (packages: string[], found: string[]) => {
    const versions = packages.map((p) => `${p} ${installedVersion(p)}`).join(', ');
    for (const problem of found) problems.push(`${versions}: ${problem}`);
  };
  blame(
    ['@apollo/gateway', '@apollo/query-planner', '@apollo/federation-internals'],
    plannerAssumptionProblems(target.gateway).map((p) => `subscription planning (gateway/subscriptions/planning.ts): ${p}`),
  );
  if (target.probe !== undefined) {
    const found = await target.prepared.selfCheck(target.apollo, target.probe, target.context);
    blame(
      ['@apollo/server'],
      found.map((p) => `prepared operations (gateway/prepared-operations.ts): ${p}`),
    );
  }
  if (problems.length > 0) throw new SelfCheckError(problems);
}

/**
 * The probe query: `{ __typename }`, or with trusted documents on (enforce refuses it, log would
 * log it as untrusted) a registered query that needs no variables; undefined when there is none
 * (the fast path's check is then skipped, and the start-up log says so).
 */
export function probeQuery(registeredDocuments: Iterable<string> | null): string | undefined {
  if (registeredDocuments === null) return '{ __typename }';
  for (const body of registeredDocuments) {
    let document: DocumentNode;
    try {
      document = parse(body);
    } catch {
      continue;
    }
    const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    const [operation] = operations;
    if (operations.length !== 1 || operation?.operation !== 'query') continue;
    if ((operation.variableDefinitions ?? []).every((v) => v.type.kind !== Kind.NON_NULL_TYPE || v.defaultValue !== undefined)) return body;
  }
  return undefined;
}
