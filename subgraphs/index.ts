// Every subgraph the platform runs, by name. `npm run subgraph -- <name>` and `npm start` read
// this list; supergraph.yaml lists the same names for composition.
import type { RequestContext } from '../runtime/context.ts';
import { startSubgraph, type RunningSubgraph, type SharedServices, type SubgraphDefinition } from '../runtime/subgraph.ts';
import { agents } from './agents/index.ts';
import { discovery } from './discovery/index.ts';
import { collaboration } from './collaboration/index.ts';
import { governance } from './governance/index.ts';
import { integrations } from './integrations/index.ts';
import { memory } from './memory/index.ts';
import { orchestration } from './orchestration/index.ts';

/** A subgraph with its database and context types closed over, so different ones share a list. */
export interface RegisteredSubgraph {
  name: string;
  start(source?: Record<string, string | undefined>, shared?: SharedServices): Promise<RunningSubgraph>;
}

function register<DB, C extends RequestContext>(def: SubgraphDefinition<DB, C>): RegisteredSubgraph {
  return { name: def.name, start: (source, shared) => startSubgraph(def, source, shared) };
}

export const subgraphs: Record<string, RegisteredSubgraph> = {
  agents: register(agents),
  orchestration: register(orchestration),
  governance: register(governance),
  memory: register(memory),
  integrations: register(integrations),
  discovery: register(discovery),
  collaboration: register(collaboration),
};
