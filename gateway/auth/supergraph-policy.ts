// The access rules the subgraphs declared with @authenticated and @requiresScopes, read from the
// composed supergraph, and the same supergraph in a form the stock ApolloGateway loads.
//
// Composition links those directives `for: SECURITY`, and @apollo/gateway (unlike the Router)
// refuses any SECURITY feature it does not know, as it cannot enforce it. The gateway enforces
// them itself (enforce.ts), so toGatewaySupergraph drops the `for:` purpose from exactly those two
// links: the gateway then treats them as plain metadata, and everything else is loaded as is.
// Features we do not enforce (e.g. @policy) keep their purpose, so such a supergraph is still
// refused: an access rule is never silently ignored.
import { Kind, parse, valueFromASTUntyped, type ConstDirectiveNode, type DocumentNode } from 'graphql';

/** What one element demands; all of it must hold. */
export interface Requirement {
  authenticated: boolean;
  /** Each entry is one @requiresScopes: alternatives (OR) of scope sets (AND). All entries must hold. */
  scopes: string[][][];
}

export interface AccessPolicy {
  /** By type name (@authenticated / @requiresScopes on an object, interface, scalar or enum). */
  types: ReadonlyMap<string, Requirement>;
  /** By coordinate "Type.field". */
  fields: ReadonlyMap<string, Requirement>;
}

const ENFORCED = {
  authenticated: /^https:\/\/specs\.apollo\.dev\/authenticated\/v\d+\.\d+$/,
  requiresScopes: /^https:\/\/specs\.apollo\.dev\/requiresScopes\/v\d+\.\d+$/,
} as const;
type Enforced = keyof typeof ENFORCED;

interface LinkApplication {
  node: ConstDirectiveNode;
  url: string;
  feature: Enforced | null;
  /** The name the feature's main directive has in this schema (after `as` and import renames). */
  localName: string | null;
}

function stringArg(node: ConstDirectiveNode, name: string): string | undefined {
  const arg = node.arguments?.find((a) => a.name.value === name);
  return arg?.value.kind === Kind.STRING ? arg.value.value : undefined;
}

/** The @link applications on the schema, whatever the link directive itself is called. */
function links(document: DocumentNode): LinkApplication[] {
  const applications = document.definitions.flatMap((d) => (d.kind === Kind.SCHEMA_DEFINITION || d.kind === Kind.SCHEMA_EXTENSION ? (d.directives ?? []) : []));
  // The link spec links itself first; its `as` (if any) renames @link for the whole schema.
  const self = applications.find((d) => stringArg(d, 'url')?.startsWith('https://specs.apollo.dev/link/'));
  const linkName = self ? (stringArg(self, 'as') ?? 'link') : 'link';
  return applications
    .filter((d) => d.name.value === linkName)
    .map((node) => {
      const url = stringArg(node, 'url') ?? '';
      const feature = (Object.keys(ENFORCED) as Enforced[]).find((f) => ENFORCED[f].test(url)) ?? null;
      return { node, url, feature, localName: feature ? localNameOf(node, feature) : null };
    });
}

function localNameOf(link: ConstDirectiveNode, feature: Enforced): string {
  const imports = link.arguments?.find((a) => a.name.value === 'import')?.value;
  if (imports?.kind === Kind.LIST) {
    for (const item of imports.values) {
      if (item.kind === Kind.STRING && item.value === `@${feature}`) return feature;
      if (item.kind === Kind.OBJECT) {
        const value = valueFromASTUntyped(item) as { name?: unknown; as?: unknown };
        if (value.name === `@${feature}`) return typeof value.as === 'string' ? value.as.replace(/^@/, '') : feature;
      }
    }
  }
  // Not imported: the feature's main directive is named after the feature, or its `as`.
  return stringArg(link, 'as') ?? feature;
}

function scopesOf(node: ConstDirectiveNode): string[][] {
  const arg = node.arguments?.find((a) => a.name.value === 'scopes');
  const value: unknown = arg ? valueFromASTUntyped(arg.value) : undefined;
  if (!Array.isArray(value) || !value.every((set) => Array.isArray(set) && set.every((s) => typeof s === 'string'))) {
    throw new Error(`@${node.name.value} needs scopes: [[String!]!]!`);
  }
  return value as string[][];
}

/** The access rules of a supergraph; renamed imports (`as`) are followed. */
export function extractAccessPolicy(supergraphSdl: string | DocumentNode): AccessPolicy {
  const document = typeof supergraphSdl === 'string' ? parse(supergraphSdl) : supergraphSdl;
  const names = new Map<string, Enforced>();
  for (const link of links(document)) if (link.feature && link.localName) names.set(link.localName, link.feature);
  const types = new Map<string, Requirement>();
  const fields = new Map<string, Requirement>();
  if (names.size === 0) return { types, fields };

  function requirementFrom(directives: readonly ConstDirectiveNode[] | undefined): Requirement | null {
    let found: Requirement | null = null;
    for (const d of directives ?? []) {
      const feature = names.get(d.name.value);
      if (!feature) continue;
      found ??= { authenticated: false, scopes: [] };
      if (feature === 'authenticated') found.authenticated = true;
      else found.scopes.push(scopesOf(d));
    }
    return found;
  }

  function add(map: Map<string, Requirement>, key: string, requirement: Requirement | null): void {
    if (!requirement) return;
    map.set(key, combine(map.get(key), requirement));
  }

  for (const def of document.definitions) {
    switch (def.kind) {
      case Kind.OBJECT_TYPE_DEFINITION:
      case Kind.OBJECT_TYPE_EXTENSION:
      case Kind.INTERFACE_TYPE_DEFINITION:
      case Kind.INTERFACE_TYPE_EXTENSION:
        add(types, def.name.value, requirementFrom(def.directives));
        for (const field of def.fields ?? []) add(fields, `${def.name.value}.${field.name.value}`, requirementFrom(field.directives));
        break;
      case Kind.SCALAR_TYPE_DEFINITION:
      case Kind.SCALAR_TYPE_EXTENSION:
      case Kind.ENUM_TYPE_DEFINITION:
      case Kind.ENUM_TYPE_EXTENSION:
        add(types, def.name.value, requirementFrom(def.directives));
        break;
      default:
        break;
    }
  }
  return { types, fields };
}

/** Both requirements must hold. */
function combine(a: Requirement | undefined, b: Requirement): Requirement {
  if (!a) return { authenticated: b.authenticated, scopes: [...b.scopes] };
  return { authenticated: a.authenticated || b.authenticated, scopes: [...a.scopes, ...b.scopes] };
}

/**
 * The supergraph with `for: SECURITY` removed from the @authenticated and @requiresScopes links
 * only; every other byte is unchanged. Use it only together with enforce.ts, which is what makes
 * dropping the purpose safe.
 */
export function toGatewaySupergraph(supergraphSdl: string): string {
  const document = parse(supergraphSdl);
  const cuts: [number, number][] = [];
  for (const link of links(document)) {
    if (!link.feature) continue;
    const args = link.node.arguments ?? [];
    const index = args.findIndex((a) => a.name.value === 'for');
    const arg = args[index];
    if (!arg?.loc) continue;
    // Remove the argument with the separator before it (or after it when it comes first).
    const before = args[index - 1];
    const after = args[index + 1];
    if (before?.loc) cuts.push([before.loc.end, arg.loc.end]);
    else if (after?.loc) cuts.push([arg.loc.start, after.loc.start]);
    else cuts.push([arg.loc.start, arg.loc.end]);
  }
  let out = supergraphSdl;
  for (const [start, end] of cuts.sort((x, y) => y[0] - x[0])) out = out.slice(0, start) + out.slice(end);
  return out;
}
