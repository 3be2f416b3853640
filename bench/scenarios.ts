// What the benchmark sends. Each scenario says, per target, which HTTP request stands for it: the
// GraphQL operation sent to the subgraph directly (the ceiling), to stock @apollo/gateway and to
// ours, or our REST route. Requests with random variables draw them from a seeded generator that
// restarts for every measurement, so every target gets the same sequence.
import { readFileSync } from 'node:fs';
import { Kind, parse, print, visit, type DefinitionNode, type FragmentDefinitionNode } from 'graphql';

/** `ours:<name>` is our gateway started again with other settings (--variant). */
export type TargetKind = 'subgraph' | 'stock' | 'ours' | `ours:${string}`;

export const isOurs = (kind: TargetKind): boolean => kind === 'ours' || kind.startsWith('ours:');

export function targetLabel(kind: TargetKind): string {
  if (kind === 'subgraph') return 'subgraph directly (ceiling)';
  if (kind === 'stock') return 'stock @apollo/gateway';
  if (kind === 'ours') return 'our gateway';
  return `our gateway (${kind.slice('ours:'.length)})`;
}

export interface HttpCall {
  method: 'GET' | 'POST';
  /** Path and query string. */
  path: string;
  /** A fixed body; or, with nextBody, the body of the first request. */
  body?: string;
  /** A new body for every request (random variables). */
  nextBody?: () => string;
}

export interface Scenario {
  id: string;
  title: string;
  /** The subgraph that alone can answer it, for the "subgraph directly" target. */
  directSubgraph?: 'agents' | 'orchestration';
  /** The call for a target; the generator is seeded anew for each measurement. */
  call(target: TargetKind, random: () => number): HttpCall;
  /** A fixed call whose answer must be the same on every target. */
  check(target: TargetKind): HttpCall;
  /** Extracts what is compared from a check answer (REST and GraphQL shapes differ). */
  comparable?(target: TargetKind, body: unknown): unknown;
  /** Only our gateway serves REST: probed before the run, skipped with a reason when absent. */
  needsRestRoute?: string;
}

export interface ScenarioData {
  agentIds: readonly string[];
}

const graphql = (query: string, variables?: Record<string, unknown>): HttpCall => ({
  method: 'POST',
  path: '/graphql',
  body: JSON.stringify(variables ? { query, variables } : { query }),
});

const randomOf = <T>(items: readonly T[], random: () => number): T => items[Math.floor(random() * items.length)] as T;

export const AGENT_LIST = `query AgentList {
  agents(first: 10) {
    totalCount
    nodes { id name description status agentVersion endpointUrl provider { organization url } capabilities { streaming pushNotifications }
      skills { id name tags examples } labels { key value } heartbeatIntervalSeconds createdAt updatedAt version }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const AGENT_JOIN = `query AgentsWithTasks {
  agents(first: 50) {
    nodes { id name status tasks(first: 5) { totalCount nodes { id title state priority attempts createdAt } } }
  }
}`;

export const AGENT_LOOKUP = `query AgentById($id: ID!) {
  agent(id: $id) { id name description status agentVersion skills { id name tags } labels { key value } version }
}`;

export const HEARTBEAT = `mutation Heartbeat($id: ID!) {
  recordHeartbeat(id: $id) { id status health lastHeartbeatAt }
}`;

/** Stable fields only: a heartbeat changes lastHeartbeatAt on every call. */
const HEARTBEAT_CHECK = `mutation HeartbeatCheck($id: ID!) { recordHeartbeat(id: $id) { id name status health } }`;

export const REST_AGENT_LIST = '/v1/agents?first=10';
const REST_OPERATIONS = new URL('../gateway/rest/operations/agents.graphql', import.meta.url);

/**
 * The GraphQL operation behind GET /v1/agents, read from the REST facade's own operation file with
 * the fragments it uses, so stock @apollo/gateway is asked for exactly the fields the route
 * returns. Falls back to AGENT_LIST while the facade does not exist.
 */
export function restEquivalentQuery(operationName = 'ListAgents'): string {
  let definitions: readonly DefinitionNode[];
  try {
    definitions = parse(readFileSync(REST_OPERATIONS, 'utf8')).definitions;
  } catch {
    return AGENT_LIST;
  }
  const operation = definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION && d.name?.value === operationName);
  if (!operation) return AGENT_LIST;
  const fragments = new Map(definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]));
  const used: FragmentDefinitionNode[] = [];
  const pending: DefinitionNode[] = [operation];
  while (pending.length > 0) {
    visit(pending.pop() as DefinitionNode, {
      FragmentSpread(node) {
        const fragment = fragments.get(node.name.value);
        if (fragment && !used.includes(fragment)) {
          used.push(fragment);
          pending.push(fragment);
        }
      },
    });
  }
  return [operation, ...used].map((d) => print(d)).join('\n');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The entity ids (UUIDs) in document order, once each: what a REST list and its GraphQL twin must
 * agree on whatever the REST representation looks like.
 */
export function idsOf(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) idsOf(item, out);
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'id' && typeof inner === 'string' && UUID.test(inner)) {
        if (!out.includes(inner)) out.push(inner);
      } else idsOf(inner, out);
    }
  }
  return out;
}

export function scenarios(data: ScenarioData): Scenario[] {
  const fixedId = data.agentIds[Math.floor(data.agentIds.length / 2)] as string;
  const restTwin = graphql(restEquivalentQuery(), { first: 10 });
  return [
    {
      id: 'list',
      title: 'one-subgraph list: agents(first: 10)',
      directSubgraph: 'agents',
      call: () => graphql(AGENT_LIST),
      check: () => graphql(AGENT_LIST),
    },
    {
      id: 'join',
      title: '50 agents joined with their tasks (2 subgraphs)',
      call: () => graphql(AGENT_JOIN),
      check: () => graphql(AGENT_JOIN),
    },
    {
      id: 'lookup',
      title: 'agent(id) by random id (new variables every request)',
      directSubgraph: 'agents',
      call: (_target, random) => ({
        ...graphql(AGENT_LOOKUP, { id: fixedId }),
        nextBody: () => JSON.stringify({ query: AGENT_LOOKUP, variables: { id: randomOf(data.agentIds, random) } }),
      }),
      check: () => graphql(AGENT_LOOKUP, { id: fixedId }),
    },
    {
      id: 'mutation',
      title: 'mutation: recordHeartbeat on a random agent',
      directSubgraph: 'agents',
      call: (_target, random) => ({
        ...graphql(HEARTBEAT, { id: fixedId }),
        nextBody: () => JSON.stringify({ query: HEARTBEAT, variables: { id: randomOf(data.agentIds, random) } }),
      }),
      check: () => graphql(HEARTBEAT_CHECK, { id: fixedId }),
    },
    {
      id: 'rest',
      title: `REST: GET ${REST_AGENT_LIST} (stock: the route's operation over GraphQL)`,
      needsRestRoute: REST_AGENT_LIST,
      call: (target) => (isOurs(target) ? { method: 'GET', path: REST_AGENT_LIST } : restTwin),
      check: (target) => (isOurs(target) ? { method: 'GET', path: REST_AGENT_LIST } : restTwin),
      comparable: (_target, body) => idsOf(body),
    },
  ];
}

/** mulberry32: small, fast, and the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
