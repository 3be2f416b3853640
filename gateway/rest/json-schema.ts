import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  Kind,
  type FragmentDefinitionNode,
  type GraphQLEnumType,
  type GraphQLField,
  type GraphQLInputObjectType,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLScalarType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';

/**
 * GraphQL types and selection sets → JSON Schema 2020-12 (what OpenAPI 3.1 uses). Named input
 * objects, enums and fragments become components referenced by `$ref`, so the document and the
 * generated client types have one name per shape; everything else is inlined.
 */

export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  description?: string;
  default?: unknown;
  examples?: unknown[];
  minimum?: number;
  maximum?: number;
  [keyword: string]: unknown;
}

export const COMPONENT_PREFIX = '#/components/schemas/';

/**
 * Built-in scalars by their GraphQL serialisation; the project's custom scalars by what
 * runtime/scalars.ts accepts. A scalar not listed here is described as any JSON value rather
 * than guessed at.
 */
function scalarSchema(type: GraphQLScalarType): JsonSchema {
  switch (type.name) {
    case 'Int':
      // The 32-bit range is the int32 format's (checked by the validator); explicit bounds would
      // become the examples the docs show (-2147483648).
      return { type: 'integer', format: 'int32' };
    case 'Float':
      return { type: 'number', format: 'double' };
    case 'String':
    case 'ID':
      return { type: 'string' };
    case 'Boolean':
      return { type: 'boolean' };
    case 'DateTime':
      return { type: 'string', format: 'date-time', examples: ['2026-11-25T19:45:00.000Z'] };
    default:
      // JSON and unknown scalars: any value, null included.
      return type.description ? { description: type.description } : {};
  }
}

/** The schema also accepting null: `type` gains "null", a `$ref` is wrapped, `{}` already allows it. */
export function nullable(schema: JsonSchema): JsonSchema {
  if (schema.$ref !== undefined) {
    const { description, ...rest } = schema;
    return { anyOf: [rest, { type: 'null' }], ...(description !== undefined ? { description } : {}) };
  }
  if (schema.type === undefined) return schema;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const out: JsonSchema = { ...schema, type: types.includes('null') ? types : [...types, 'null'] };
  if (schema.enum && !schema.enum.includes(null)) out.enum = [...schema.enum, null];
  return out;
}

function withDescription(schema: JsonSchema, description: string | null | undefined): JsonSchema {
  return description ? { ...schema, description } : schema;
}

export class SchemaBuilder {
  private readonly components = new Map<string, JsonSchema>();
  /** Which kind of thing claimed each component name, to report collisions clearly. */
  private readonly owners = new Map<string, string>();

  constructor(
    readonly schema: GraphQLSchema,
    private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  ) {}

  /** The components referenced so far, sorted by name so the document is stable. */
  componentSchemas(): Record<string, JsonSchema> {
    return Object.fromEntries([...this.components.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** The schema of an input value (a variable, an argument, an input field). */
  input(type: GraphQLInputType): JsonSchema {
    if (isNonNullType(type)) return this.inputNamedOrList(type.ofType);
    return nullable(this.inputNamedOrList(type));
  }

  /** Like input(), for a value that is present when given at all (a parameter, a body): never null at the top. */
  inputValue(type: GraphQLInputType): JsonSchema {
    return this.inputNamedOrList(isNonNullType(type) ? type.ofType : type);
  }

  private inputNamedOrList(type: GraphQLInputType): JsonSchema {
    if (isListType(type)) return { type: 'array', items: this.input(type.ofType) };
    if (isScalarType(type)) return scalarSchema(type);
    if (isEnumType(type)) return this.ref(type.name, 'enum', () => this.enumSchema(type));
    if (isInputObjectType(type)) return this.ref(type.name, 'input type', () => this.inputObjectSchema(type));
    throw new Error(`unsupported input type ${String(type)}`);
  }

  private enumSchema(type: GraphQLEnumType): JsonSchema {
    return withDescription({ type: 'string', enum: type.getValues().map((v) => v.name) }, type.description);
  }

  private inputObjectSchema(type: GraphQLInputObjectType): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const field of Object.values(type.getFields())) {
      let schema = withDescription(this.input(field.type), field.description);
      if (field.defaultValue !== undefined) schema = { ...schema, default: field.defaultValue };
      properties[field.name] = schema;
      if (isNonNullType(field.type) && field.defaultValue === undefined) required.push(field.name);
    }
    return withDescription({ type: 'object', properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false }, type.description);
  }

  /**
   * The schema of a field's value as selected. A selection that is exactly one fragment spread
   * becomes a reference to the component named after the fragment.
   */
  output(type: GraphQLOutputType, selectionSet: SelectionSetNode | undefined): JsonSchema {
    if (isNonNullType(type)) return this.outputNamedOrList(type.ofType, selectionSet);
    return nullable(this.outputNamedOrList(type, selectionSet));
  }

  /** Like output(), for a value known to be present (a success body): never null at the top. */
  outputValue(type: GraphQLOutputType, selectionSet: SelectionSetNode | undefined): JsonSchema {
    return this.outputNamedOrList(isNonNullType(type) ? type.ofType : type, selectionSet);
  }

  /** The property names of an object schema, following a component reference. */
  topLevelProperties(schema: JsonSchema): string[] {
    const target = schema.$ref?.startsWith(COMPONENT_PREFIX) ? this.components.get(schema.$ref.slice(COMPONENT_PREFIX.length)) : schema;
    return Object.keys(target?.properties ?? {});
  }

  private outputNamedOrList(type: GraphQLOutputType, selectionSet: SelectionSetNode | undefined): JsonSchema {
    if (isListType(type)) return { type: 'array', items: this.output(type.ofType, selectionSet) };
    if (isScalarType(type)) return scalarSchema(type);
    if (isEnumType(type)) return this.ref(type.name, 'enum', () => this.enumSchema(type));
    if (isObjectType(type)) {
      if (!selectionSet) throw new Error(`field of type ${type.name} needs a selection set`);
      const only = selectionSet.selections.length === 1 ? selectionSet.selections[0] : undefined;
      if (only?.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = this.fragment(only.name.value, type);
        return this.ref(fragment.name.value, 'fragment', () => withDescription(this.objectSchema(type, fragment.selectionSet), type.description));
      }
      return this.objectSchema(type, selectionSet);
    }
    throw new Error(`${getNamedType(type).name} is an interface or union: not supported by the REST facade yet`);
  }

  private fragment(name: string, parent: GraphQLObjectType): FragmentDefinitionNode {
    const fragment = this.fragments.get(name);
    if (!fragment) throw new Error(`unknown fragment ${name}`);
    if (fragment.typeCondition.name.value !== parent.name) {
      throw new Error(`fragment ${name} is on ${fragment.typeCondition.name.value}, spread where ${parent.name} is expected`);
    }
    return fragment;
  }

  private objectSchema(type: GraphQLObjectType, selectionSet: SelectionSetNode): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required = new Set<string>();
    this.collect(type, selectionSet, properties, required, false);
    return { type: 'object', properties, required: [...required], additionalProperties: false };
  }

  /** Fields of a selection set, fragments merged in; @skip/@include make a field optional. */
  private collect(
    type: GraphQLObjectType,
    selectionSet: SelectionSetNode,
    properties: Record<string, JsonSchema>,
    required: Set<string>,
    conditional: boolean,
  ): void {
    const fields = type.getFields();
    for (const selection of selectionSet.selections) {
      const isConditional = conditional || (selection.directives ?? []).some((d) => d.name.value === 'skip' || d.name.value === 'include');
      if (selection.kind === Kind.FIELD) {
        const key = selection.alias?.value ?? selection.name.value;
        if (selection.name.value === '__typename') {
          properties[key] = { type: 'string', const: type.name };
        } else {
          const field: GraphQLField<unknown, unknown> | undefined = fields[selection.name.value];
          if (!field) throw new Error(`${type.name} has no field ${selection.name.value}`);
          properties[key] = withDescription(this.output(field.type, selection.selectionSet), field.description);
        }
        if (!isConditional) required.add(key);
      } else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        this.collect(type, this.fragment(selection.name.value, type).selectionSet, properties, required, isConditional);
      } else {
        const on = selection.typeCondition?.name.value;
        if (on !== undefined && on !== type.name)
          throw new Error(`inline fragment on ${on} inside ${type.name}: type conditions are not supported by the REST facade yet`);
        this.collect(type, selection.selectionSet, properties, required, isConditional);
      }
    }
  }

  private ref(name: string, kind: string, build: () => JsonSchema): JsonSchema {
    const owner = this.owners.get(name);
    if (owner !== undefined && owner !== kind)
      throw new Error(`the ${kind} ${name} and the ${owner} ${name} would share one component name; rename the fragment`);
    if (owner === undefined) {
      this.owners.set(name, kind);
      // Placed before building so recursive input types refer to themselves instead of looping.
      this.components.set(name, {});
      this.components.set(name, build());
    }
    return { $ref: `${COMPONENT_PREFIX}${name}` };
  }
}
