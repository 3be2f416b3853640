// Generated GraphQL operations for the generative e2e suite: built from the API schema a client
// introspects (root fields, their arguments and selections), valid or with one thing broken, and
// a checker that a success's data has the shape of its selection (every key selected and nothing
// else, null only where the type allows it, scalars of their type).
import fc from 'fast-check';
import {
  getNamedType,
  isAbstractType,
  isCompositeType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  Kind,
  parse,
  type FieldNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

export type Gen = fc.GeneratorValue;

/** Ids that exist (so lookups find something), with room for ones that do not. */
export interface IdPool {
  ids: string[];
}

export interface GeneratedOperation {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: unknown;
  /** What was broken on purpose (undefined: a valid operation). */
  broken?: string;
}

const STRINGS = ['', 'a', 'summarize', 'Ünïcødé ✓', 'x'.repeat(300), '"quoted" \\ back', 'line\nbreak', '%00<script>', 'tag-1'];

/** By index: fc.gen compares the arguments of each draw, and schema objects are cyclic. */
function pick<T>(g: Gen, values: readonly T[]): T {
  return values[g(fc.integer, { min: 0, max: values.length - 1 })] as T;
}

/** A value of an input type: null sometimes where the type allows it. */
function inputValue(g: Gen, type: GraphQLInputType, pool: IdPool, depth: number): unknown {
  if (!isNonNullType(type) && g(fc.integer, { min: 0, max: 9 }) === 0) return null;
  return presentValue(g, isNonNullType(type) ? type.ofType : type, pool, depth);
}

function presentValue(g: Gen, type: GraphQLInputType, pool: IdPool, depth: number): unknown {
  if (isListType(type)) {
    const n = g(fc.integer, { min: 0, max: depth > 2 ? 0 : 3 });
    return Array.from({ length: n }, () => inputValue(g, type.ofType, pool, depth + 1));
  }
  if (isEnumType(type))
    return pick(
      g,
      type.getValues().map((v) => v.name),
    );
  if (isInputObjectType(type)) {
    const out: Record<string, unknown> = {};
    for (const field of Object.values(type.getFields())) {
      const required = isNonNullType(field.type) && field.defaultValue === undefined;
      if ((required && depth < 6) || (depth < 3 && g(fc.boolean))) out[field.name] = inputValue(g, field.type, pool, depth + 1);
    }
    return out;
  }
  switch (type.name) {
    case 'Int':
      return g(() =>
        fc.oneof(
          { arbitrary: fc.integer({ min: 1, max: 100 }), weight: 3 },
          { arbitrary: fc.integer({ min: -5, max: 200 }), weight: 1 },
          { arbitrary: fc.constantFrom(0, 5, 60, 3600, 2 ** 31 - 1, -(2 ** 31)), weight: 1 },
        ),
      );
    case 'Float':
      return g(fc.double, { noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });
    case 'Boolean':
      return g(fc.boolean);
    case 'ID':
      // Mostly ids that exist, so lookups and changes get past "not found".
      return g(() =>
        fc.oneof(
          { arbitrary: fc.constantFrom(...pool.ids), weight: 4 },
          { arbitrary: fc.uuid(), weight: 1 },
          { arbitrary: fc.constantFrom('', 'nope', '0'), weight: 1 },
        ),
      );
    case 'String':
      return g(() => fc.oneof(fc.constantFrom(...STRINGS), fc.string({ maxLength: 20 })));
    case 'DateTime':
      return g(() =>
        fc.oneof(
          fc.constantFrom('2026-01-01T00:00:00Z', 'yesterday', ''),
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        ),
      );
    default:
      // JSON and any other custom scalar: any JSON value.
      return g(fc.jsonValue, { maxDepth: 2 });
  }
}

/** A value whose kind does not fit the type (what validation or coercion must refuse). */
function wrongValue(g: Gen, type: GraphQLInputType): unknown {
  const named = getNamedType(type);
  if (isNonNullType(type) && g(fc.boolean)) return null;
  if (isScalarType(named) && named.name === 'JSON') return undefined;
  if (isScalarType(named) && (named.name === 'String' || named.name === 'ID' || named.name === 'DateTime'))
    return pick(g, [{ an: 'object' }, [[1]], true, 1.5]);
  if (isScalarType(named)) return pick(g, ['not a number', { an: 'object' }, 1.5e300, 2 ** 31]);
  if (isEnumType(named)) return pick(g, ['NOT_A_VALUE', 'active', 3]);
  return pick(g, ['a string', 42, [{ unknownField: 1 }]]);
}

/** GraphQL literal syntax for a JSON-like value (enums as bare names). */
function literal(value: unknown, type: GraphQLInputType): string {
  if (value === null || value === undefined) return 'null';
  if (isNonNullType(type)) return literal(value, type.ofType);
  if (isListType(type)) return Array.isArray(value) ? `[${value.map((v) => literal(v, type.ofType)).join(', ')}]` : literal(value, type.ofType);
  if (isEnumType(type) && typeof value === 'string' && /^[_A-Za-z][_0-9A-Za-z]*$/.test(value)) return value;
  if (isInputObjectType(type) && typeof value === 'object' && !Array.isArray(value)) {
    const fields = type.getFields();
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}: ${fields[k] ? literal(v, fields[k]!.type) : jsonLiteral(v)}`)
      .join(', ')}}`;
  }
  return jsonLiteral(value);
}

function jsonLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(jsonLiteral).join(', ')}]`;
  if (typeof value === 'object')
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([k]) => /^[_A-Za-z][_0-9A-Za-z]*$/.test(k))
      .map(([k, v]) => `${k}: ${jsonLiteral(v)}`)
      .join(', ')}}`;
  if (typeof value === 'number') return Number.isFinite(value) ? String(Object.is(value, -0) ? 0 : value) : '0';
  return JSON.stringify(value);
}

interface Builder {
  g: Gen;
  schema: GraphQLSchema;
  pool: IdPool;
  variables: Record<string, unknown>;
  definitions: string[];
  aliases: number;
  /** Set once something was broken on purpose. */
  broken?: string;
  /** What to break (at most once), when the operation is to be invalid. */
  breakWith?: 'unknown field' | 'wrong argument' | 'bad variable';
}

function argumentsOf(b: Builder, field: GraphQLField<unknown, unknown>): string {
  const parts: string[] = [];
  for (const arg of field.args) {
    const required = isNonNullType(arg.type) && arg.defaultValue === undefined;
    if (!required && !b.g(fc.boolean)) continue;
    let value = inputValue(b.g, arg.type, b.pool, 0);
    const breakHere = (b.breakWith === 'wrong argument' || b.breakWith === 'bad variable') && !b.broken && b.g(fc.boolean);
    const asVariable = b.breakWith === 'bad variable' ? breakHere || b.g(fc.boolean) : b.g(fc.boolean);
    if (breakHere) {
      const wrong = wrongValue(b.g, arg.type);
      if (wrong !== undefined) {
        value = wrong;
        b.broken = `${b.breakWith} ${field.name}(${arg.name})`;
      }
    }
    if (asVariable) {
      const name = `v${b.definitions.length}`;
      b.definitions.push(`$${name}: ${String(arg.type)}`);
      b.variables[name] = value;
      parts.push(`${arg.name}: $${name}`);
    } else {
      parts.push(`${arg.name}: ${literal(value, arg.type)}`);
    }
  }
  return parts.length > 0 ? `(${parts.join(', ')})` : '';
}

function selection(b: Builder, type: GraphQLCompositeType, depth: number): string {
  const parts = new Set<string>();
  if (isAbstractType(type)) {
    parts.add('__typename');
    const possible = b.schema.getPossibleTypes(type);
    if (possible.length > 0 && depth < 3) {
      const concrete = pick(b.g, possible);
      parts.add(`... on ${concrete.name} ${selection(b, concrete, depth + 1)}`);
    }
    return `{ ${[...parts].join(' ')} }`;
  }
  const fields = Object.values(type.getFields());
  const leaves = fields.filter((f) => !isCompositeType(getNamedType(f.type)));
  if (depth >= 3 && leaves.length === 0) return '{ __typename }';
  const candidates = depth >= 3 ? leaves : fields;
  const count = b.g(fc.integer, { min: 1, max: Math.min(4, candidates.length) });
  const used = new Set<string>();
  for (let i = 0; i < count; i++) {
    const field = pick(b.g, candidates);
    // Aliases unique in the whole operation, and always for a field with arguments or picked
    // twice: selections merged from two places must not ask one response key for two things.
    const aliased = field.args.length > 0 || used.has(field.name) || b.g(fc.integer, { min: 0, max: 7 }) === 0;
    used.add(field.name);
    const alias = aliased ? `a${b.aliases++}: ` : '';
    const named = getNamedType(field.type);
    const sub = isCompositeType(named) ? ` ${selection(b, named, depth + 1)}` : '';
    parts.add(`${alias}${field.name}${argumentsOf(b, field)}${sub}`);
  }
  if (b.breakWith === 'unknown field' && !b.broken && b.g(fc.boolean)) {
    parts.add('notAFieldOfThisType');
    b.broken = `unknown field on ${type.name}`;
  }
  if (parts.size === 0) parts.add('__typename');
  return `{ ${[...parts].join(' ')} }`;
}

/** An operation on Query or Mutation of the schema; broken in one way when `breakWith` is given. */
export function operation(g: Gen, schema: GraphQLSchema, pool: IdPool, breakWith?: Builder['breakWith']): GeneratedOperation {
  const root = pick(
    g,
    [schema.getQueryType(), schema.getQueryType(), schema.getMutationType()].filter((t) => t != null),
  );
  const b: Builder = { g, schema, pool, variables: {}, definitions: [], aliases: 0, ...(breakWith ? { breakWith } : {}) };
  const fields = Object.values(root.getFields());
  const parts: string[] = [];
  const count = root.name === 'Mutation' ? 1 : g(fc.integer, { min: 1, max: 2 });
  for (let i = 0; i < count; i++) {
    const field = pick(g, fields);
    const named = getNamedType(field.type);
    const sub = isCompositeType(named) ? ` ${selection(b, named, 1)}` : '';
    parts.push(`r${i}: ${field.name}${argumentsOf(b, field)}${sub}`);
  }
  if (breakWith === 'unknown field' && !b.broken) {
    parts.push('notARootField');
    b.broken = 'unknown root field';
  }
  const name = `Generated${g(fc.integer, { min: 0, max: 3 })}`;
  const keyword = root.name === 'Mutation' ? 'mutation' : 'query';
  const variables = b.definitions.length > 0 ? `(${b.definitions.join(', ')})` : '';
  let vars: Record<string, unknown> | undefined = b.definitions.length > 0 ? b.variables : undefined;
  const required = b.definitions.find((d) => d.endsWith('!'));
  if (breakWith === 'bad variable' && !b.broken && required) {
    // Nothing was broken in place: leave out a variable the operation requires.
    vars = { ...b.variables };
    delete vars[required.slice(1, required.indexOf(':'))];
    b.broken = 'missing required variable';
  }
  const query = `${keyword} ${name}${variables} { ${parts.join(' ')} }`;
  return { query, ...(vars ? { variables: vars } : {}), operationName: name, ...(b.broken ? { broken: b.broken } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Does the data have the shape of the selection?

const INT_RANGE = 2 ** 31;

export function checkShape(schema: GraphQLSchema, query: string, operationName: string | undefined, data: unknown): string[] {
  const document = parse(query);
  const op = document.definitions.find(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && (operationName === undefined || d.name?.value === operationName),
  );
  if (!op) return ['no operation to check against'];
  const root = schema.getRootType(op.operation);
  if (!root) return [`no ${op.operation} type`];
  const problems: string[] = [];
  checkObject(schema, root, op.selectionSet, data, 'data', problems);
  return problems;
}

function checkObject(schema: GraphQLSchema, type: GraphQLCompositeType, set: SelectionSetNode, value: unknown, path: string, problems: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${path}: expected an object of ${type.name}, got ${JSON.stringify(value)}`);
    return;
  }
  const object = value as Record<string, unknown>;
  let concrete = type;
  if (isAbstractType(type)) {
    const typename = object.__typename;
    const found = typeof typename === 'string' ? schema.getType(typename) : undefined;
    if (!found || !isObjectType(found) || !schema.isSubType(type, found)) {
      problems.push(`${path}: __typename ${JSON.stringify(typename)} is not a ${type.name}`);
      return;
    }
    concrete = found;
  }
  // A response key selected several times (directly or through fragments) merges their selections.
  const expected = new Map<string, FieldNode[]>();
  const collect = (s: SelectionSetNode) => {
    for (const sel of s.selections) {
      if (sel.kind === Kind.FIELD) {
        const key = sel.alias?.value ?? sel.name.value;
        expected.set(key, [...(expected.get(key) ?? []), sel]);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const condition = sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : concrete;
        if (condition && (condition === concrete || (isAbstractType(condition) && isObjectType(concrete) && schema.isSubType(condition, concrete))))
          collect(sel.selectionSet);
      }
    }
  };
  collect(set);
  for (const key of Object.keys(object)) if (!expected.has(key)) problems.push(`${path}.${key}: not selected`);
  for (const [key, nodes] of expected) {
    const field = nodes[0]!;
    const sets = nodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
    const merged: SelectionSetNode | undefined = sets.length > 0 ? { kind: Kind.SELECTION_SET, selections: sets.flatMap((x) => x.selections) } : undefined;
    if (!(key in object)) {
      problems.push(`${path}.${key}: missing`);
      continue;
    }
    if (field.name.value === '__typename') {
      if (object[key] !== concrete.name) problems.push(`${path}.${key}: ${JSON.stringify(object[key])} is not ${concrete.name}`);
      continue;
    }
    const def = 'getFields' in concrete ? concrete.getFields()[field.name.value] : undefined;
    if (!def) {
      problems.push(`${path}.${key}: no field ${field.name.value} on ${concrete.name}`);
      continue;
    }
    checkValue(schema, def.type, merged, object[key], `${path}.${key}`, problems);
  }
}

function checkValue(schema: GraphQLSchema, type: GraphQLOutputType, set: SelectionSetNode | undefined, value: unknown, path: string, problems: string[]): void {
  if (isNonNullType(type)) {
    if (value === null || value === undefined) problems.push(`${path}: null in a non-null ${String(type)}`);
    else checkValue(schema, type.ofType, set, value, path, problems);
    return;
  }
  if (value === null) return;
  if (isListType(type)) {
    if (!Array.isArray(value)) problems.push(`${path}: expected a list, got ${JSON.stringify(value)}`);
    else
      value.forEach((item, i) => {
        checkValue(schema, type.ofType, set, item, `${path}[${i}]`, problems);
      });
    return;
  }
  if (isEnumType(type)) {
    if (typeof value !== 'string' || !type.getValue(value)) problems.push(`${path}: ${JSON.stringify(value)} is not a ${type.name}`);
    return;
  }
  if (isCompositeType(type)) {
    if (!set) problems.push(`${path}: composite without a selection`);
    else checkObject(schema, type, set, value, path, problems);
    return;
  }
  const ok = (() => {
    switch (type.name) {
      case 'Int':
        return typeof value === 'number' && Number.isInteger(value) && value >= -INT_RANGE && value < INT_RANGE;
      case 'Float':
        return typeof value === 'number' && Number.isFinite(value);
      case 'String':
      case 'ID':
        return typeof value === 'string';
      case 'Boolean':
        return typeof value === 'boolean';
      case 'DateTime':
        return typeof value === 'string' && !Number.isNaN(Date.parse(value));
      default:
        return value !== undefined;
    }
  })();
  if (!ok) problems.push(`${path}: ${JSON.stringify(value)} is not a ${type.name}`);
}
