// Every subgraph the platform runs, by name. `npm run subgraph -- <name>` and `npm start` read
// this list; supergraph.yaml lists the same names for composition.
import type { RequestContext } from '../runtime/context.ts';
import type { SubgraphDefinition } from '../runtime/subgraph.ts';
import { agents } from './agents/index.ts';
import { orchestration } from './orchestration/index.ts';

export const subgraphs: Record<string, SubgraphDefinition<unknown, RequestContext>> = {
  agents,
  orchestration,
};
