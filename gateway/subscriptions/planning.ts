// The supergraph the gateway serves right now, for planning subscriptions the way the gateway
// plans queries: with the gateway's own QueryPlanner instance (so every planner option and every
// supergraph reload applies), plans cached per operation text and dropped with the supergraph.
import type { ApolloGateway } from '@apollo/gateway';
import { operationFromDocument, type Schema } from '@apollo/federation-internals';
import type { FetchNode, PlanNode, QueryPlan, QueryPlanner } from '@apollo/query-planner';
import type { DocumentNode, GraphQLSchema } from 'graphql';

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
