// A NUL character (U+0000) is valid in a GraphQL or JSON string but not in PostgreSQL text or
// jsonb, where it failed as an internal error after the request had been admitted, while SQLite
// stored it. Refusing it at the boundary, before anything executes, answers the same bad input
// on every backend and for every subgraph: no resolver has to remember it.
import { BREAK, GraphQLError, Kind, visit, type DocumentNode, type ValueNode } from 'graphql';

/** Where a request carries a NUL character: the argument (as written) or variable ($name) and the path inside it. */
export interface NulCharacterFound {
  kind: 'argument' | 'variable';
  /** `name`, `input.labels[0]`, `$input.config.key` */
  path: string;
}

const NUL = '\u0000';

/** The first NUL character in the document's string literals or in the variables, if any. */
export function findNulCharacter(document: DocumentNode | undefined, variables: Record<string, unknown> | null | undefined): NulCharacterFound | undefined {
  for (const [name, value] of Object.entries(variables ?? {})) {
    const path = inJsonValue(value, `$${name}`);
    if (path) return { kind: 'variable', path };
  }
  if (!document) return undefined;
  // A document's literals never change: scanned once per parsed document (Apollo and the fast
  // path hand the same object to every request of the same text), so a request costs only its
  // variables.
  let cached = literalFindings.get(document);
  if (cached === undefined) {
    cached = inLiterals(document) ?? null;
    literalFindings.set(document, cached);
  }
  return cached ?? undefined;
}

const literalFindings = new WeakMap<DocumentNode, NulCharacterFound | null>();

/** Arguments of fields and directives wherever they stand (operations and fragments), and variables' default values. */
function inLiterals(document: DocumentNode): NulCharacterFound | undefined {
  let found: NulCharacterFound | undefined;
  visit(document, {
    Argument(node) {
      const path = inLiteral(node.value, node.name.value);
      if (path) found = { kind: 'argument', path };
      return path ? BREAK : false;
    },
    VariableDefinition(node) {
      const path = node.defaultValue ? inLiteral(node.defaultValue, `$${node.variable.name.value}`) : undefined;
      if (path) found = { kind: 'variable', path };
      return path ? BREAK : false;
    },
  });
  return found;
}

/** The BAD_USER_INPUT a request with a NUL character is refused with (400 over HTTP). */
export function nulCharacterError(found: NulCharacterFound): GraphQLError {
  const what = found.kind === 'variable' ? `Variable "${found.path}"` : `Argument "${found.path}"`;
  return new GraphQLError(`${what} contains a NUL character (U+0000), which is not accepted in strings`, {
    extensions: { code: 'BAD_USER_INPUT', [found.kind]: found.path, http: { status: 400 } },
  });
}

function inJsonValue(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes(NUL) ? path : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = inJsonValue(item, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes(NUL)) return `${path}.${JSON.stringify(key)}`;
      const found = inJsonValue(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

function inLiteral(value: ValueNode, path: string): string | undefined {
  switch (value.kind) {
    case Kind.STRING:
      return value.value.includes(NUL) ? path : undefined;
    case Kind.LIST:
      for (const [i, item] of value.values.entries()) {
        const found = inLiteral(item, `${path}[${i}]`);
        if (found) return found;
      }
      return undefined;
    case Kind.OBJECT:
      for (const field of value.fields) {
        const found = inLiteral(field.value, `${path}.${field.name.value}`);
        if (found) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}
