// The supergraph the gateway serves right now, for planning subscriptions the way the gateway
// plans queries: with the gateway's own QueryPlanner instance (so every planner option and every
// supergraph reload applies), plans cached per operation text and dropped with the supergraph.
import type { ApolloGateway } from '@apollo/gateway';
import { operationFromDocument, type Schema } from '@apollo/federation-internals';
import type { FetchNode, PlanNode, QueryPlan, QueryPlanner } from '@apollo/query-planner';
import { getNamedType, isCompositeType, isNonNullType, parse, type DocumentNode, type GraphQLSchema } from 'graphql';

export interface SubscriptionPlan {
  /** The fetch that subscribes, to the subgraph owning the subscription field. */
  primary: FetchNode;
  /**
   * What runs for every event: the primary fetch (answered with the event) followed by the fetches
   * for fields of other subgraphs. executeQueryPlan refuses a Subscription root node, not this.
   */
  perEvent: QueryPlan;
}

export interface Supergraph {
  /** Changes with every schema load or reload; shared subscriptions never span two. */
  readonly id: number;
  /** The API schema clients validate against (the same object Apollo Server serves). */
  readonly apiSchema: GraphQLSchema;
  /** The forms executeQueryPlan wants. */
  readonly apiSchemaInternal: Schema;
  readonly supergraphSchema: GraphQLSchema;
  plan(document: DocumentNode, query: string, operationName: string | undefined): SubscriptionPlan;
}

const PLAN_CACHE_ENTRIES = 500;

export class SupergraphNotLoadedError extends Error {
  constructor() {
    super('the gateway has no supergraph loaded yet');
  }
}

/** Follows the gateway's current supergraph; read it per operation with current(). */
export class Planning {
  private snapshot: { planner: QueryPlanner; supergraph: Supergraph } | undefined;
  private loads = 0;

  constructor(private readonly gateway: ApolloGateway) {}

  current(): Supergraph {
    // __testing() is how @apollo/gateway 2.x exposes its live planner; a reload replaces the
    // planner object, which is what tells a new supergraph from the one planned before.
    const planner = this.gateway.__testing().queryPlanner;
    const apiSchema = this.gateway.schema;
    if (!planner || !apiSchema) throw new SupergraphNotLoadedError();
    if (this.snapshot?.planner !== planner) this.snapshot = { planner, supergraph: this.build(planner, apiSchema) };
    return this.snapshot.supergraph;
  }

  private build(planner: QueryPlanner, apiSchema: GraphQLSchema): Supergraph {
    const apiSchemaInternal = planner.supergraph.apiSchema();
    const supergraphSchema = planner.supergraph.schema.toGraphQLJSSchema();
    const plans = new Map<string, SubscriptionPlan>();
    return {
      id: ++this.loads,
      apiSchema,
      apiSchemaInternal,
      supergraphSchema,
      plan(document, query, operationName) {
        const key = `${operationName ?? ''}\u0000${query}`;
        const cached = plans.get(key);
        if (cached) {
          // Most recently used last: the first entry is the one to evict.
          plans.delete(key);
          plans.set(key, cached);
          return cached;
        }
        const plan = subscriptionPlan(planner.buildQueryPlan(operationFromDocument(apiSchemaInternal, document, { operationName })));
        if (plans.size >= PLAN_CACHE_ENTRIES) plans.delete(plans.keys().next().value as string);
        plans.set(key, plan);
        return plan;
      },
    };
  }
}

function subscriptionPlan(plan: QueryPlan): SubscriptionPlan {
  const node = plan.node;
  if (node?.kind !== 'Subscription') throw new Error(`expected a Subscription plan node, got ${node?.kind ?? 'none'}`);
  const nodes: PlanNode[] = node.rest ? [node.primary, node.rest] : [node.primary];
  return { primary: node.primary, perEvent: { kind: 'QueryPlan', node: { kind: 'Sequence', nodes } } };
}

/**
 * What subscription planning assumes of @apollo/gateway and @apollo/query-planner internals,
 * checked against the gateway as loaded (gateway/self-check.ts runs it at start): a live planner
 * behind __testing(), its supergraph in the forms executeQueryPlan wants, and a Subscription plan
 * node with a primary fetch for a subscription of the API schema. Returns what no longer holds.
 */
export function plannerAssumptionProblems(gateway: ApolloGateway): string[] {
  if (typeof gateway.__testing !== 'function') return ['ApolloGateway.__testing() is gone (it exposes the live query planner)'];
  const planner = gateway.__testing().queryPlanner as Partial<QueryPlanner> | null | undefined;
  if (!planner) return ['ApolloGateway.__testing().queryPlanner is missing after the supergraph loaded'];
  const problems: string[] = [];
  if (typeof planner.buildQueryPlan !== 'function') problems.push('QueryPlanner.buildQueryPlan is not a function');
  if (typeof planner.supergraph?.apiSchema !== 'function') problems.push('QueryPlanner.supergraph.apiSchema() is not a function');
  if (typeof planner.supergraph?.schema?.toGraphQLJSSchema !== 'function')
    problems.push('QueryPlanner.supergraph.schema.toGraphQLJSSchema() is not a function');
  if (typeof operationFromDocument !== 'function') problems.push('@apollo/federation-internals no longer exports operationFromDocument');
  if (problems.length > 0 || !gateway.schema) return problems;
  // Plan the first subscription field that needs no argument, selecting only __typename.
  const field = Object.values(gateway.schema.getSubscriptionType()?.getFields() ?? {}).find((f) =>
    f.args.every((a) => !isNonNullType(a.type) || a.defaultValue !== undefined),
  );
  if (!field) return problems;
  const type = getNamedType(field.type);
  const selection = isCompositeType(type) ? `${field.name} { __typename }` : field.name;
  try {
    const plan = new Planning(gateway).current().plan(parse(`subscription { ${selection} }`), `subscription { ${selection} }`, undefined);
    if (plan.primary.kind !== 'Fetch' || typeof plan.primary.serviceName !== 'string')
      problems.push(`the Subscription plan's primary node is not a fetch (kind ${String(plan.primary.kind)})`);
  } catch (err) {
    problems.push(`planning "subscription { ${selection} }" failed: ${(err as Error).message}`);
  }
  return problems;
}
