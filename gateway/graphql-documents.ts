// Helpers over GraphQL documents that more than one part of the gateway needs (the REST facade
// and trusted-document manifests both send an operation together with the fragments it uses).
// Policy code imports this, never a transport's module.
import { visit, type DefinitionNode, type FragmentDefinitionNode } from 'graphql';

/** The fragments a definition spreads, directly or through other fragments. */
export function fragmentsUsed(node: DefinitionNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>, into = new Set<string>()): Set<string> {
  visit(node, {
    FragmentSpread(spread) {
      const name = spread.name.value;
      if (into.has(name)) return;
      into.add(name);
      const fragment = fragments.get(name);
      if (fragment) fragmentsUsed(fragment, fragments, into);
    },
  });
  return into;
}
