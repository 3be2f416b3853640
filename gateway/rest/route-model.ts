import {
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  isSpecifiedScalarType,
  Kind,
  parse,
  typeFromAST,
  validate,
  valueFromAST,
  type FieldNode,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type ValueNode,
} from 'graphql';
import { SchemaBuilder, type JsonSchema } from './json-schema.ts';
import type { OperationSet, RouteDeclaration, TagDeclaration } from './operations.ts';

/**
 * A route declaration checked against the API schema, with everything the router and the OpenAPI
 * generator need: where each variable comes from, the JSON Schemas of the parameters, body and
 * response, and which request value each GraphQL argument was fed from (to point errors at it).
 *
 * Where variables come from:
 * - `{name}` in the path: the variable of that name;
 * - GET and DELETE: every other variable is a query parameter;
 * - POST, PUT, PATCH: variables named by `@query` are query parameters; of the rest, a single
 *   input-object variable is the whole JSON body, otherwise the body is an object whose
 *   properties are the variables.
 * Query parameters are scalars or enums (`?first=10`), lists of them (repeated: `?tag=a&tag=b`)
 * or input objects of those (deepObject: `?label[key]=team&label[value]=ml`); they are coerced
 * from text by their GraphQL type before validation.
 */

export type ParameterLocation = 'path' | 'query';

export interface ParameterModel {
  name: string;
  in: ParameterLocation;
  required: boolean;
  style: 'simple' | 'form' | 'deepObject';
  schema: JsonSchema;
  type: GraphQLInputType;
  description: string | undefined;
}

export interface BodyModel {
  /** `whole`: the body is the value of `variables[0]`; `properties`: one property per variable. */
  mode: 'whole' | 'properties';
  variables: string[];
  required: boolean;
  schema: JsonSchema;
  /** The input type of a whole body, to place error paths that name its fields. */
  inputTypeFields: Set<string>;
}

/** Where a request value sat: a parameter, or a JSON pointer (as segments) into the body. */
export type ValueSource = { in: ParameterLocation; name: string; path: string[] } | { in: 'body'; path: string[] };

export interface RouteModel {
  declaration: RouteDeclaration;
  summary: string;
  description: string | undefined;
  parameters: ParameterModel[];
  body: BodyModel | undefined;
  /** The root field's key in `data`. */
  responseKey: string;
  /** The root field's named type, for "Agent not found". */
  resourceName: string;
  /** Its SDL description, describing the success response. */
  resourceDescription: string | undefined;
  /** Whether the root field can be null (then @null decides between 204 and 404). */
  nullable: boolean;
  response: JsonSchema;
  /** GraphQL argument path of the root field (e.g. `filter.label`) → where its value came from. */
  argumentSources: Map<string, ValueSource>;
  /** Defaults the schema applies when a variable is omitted, shown in the document. */
  defaults: Map<string, unknown>;
}

export interface CompiledRoutes {
  routes: RouteModel[];
  /** Routes whose operation does not fit the current schema, with the reasons. */
  unavailable: { declaration: RouteDeclaration; reasons: string[] }[];
  components: Record<string, JsonSchema>;
  tags: TagDeclaration[];
}

interface VariableUse {
  argumentPath: string;
  description: string | undefined;
  defaultValue: unknown;
}

/** Custom scalars with a text form fit for a query parameter; others (JSON) travel in bodies. */
const TEXT_SCALARS = new Set(['DateTime']);

function isTextual(type: GraphQLInputType): boolean {
  const named = getNamedType(type);
  return isEnumType(named) || (isScalarType(named) && (isSpecifiedScalarType(named) || TEXT_SCALARS.has(named.name)));
}

function queryStyle(type: GraphQLInputType): { style: ParameterModel['style'] } | string {
  const t = getNullableType(type);
  if (isListType(t)) {
    const item = getNullableType(t.ofType);
    return !isListType(item) && isTextual(item) ? { style: 'form' } : 'lists in the query string must hold scalars or enums';
  }
  if (isInputObjectType(t)) {
    for (const field of Object.values(t.getFields())) {
      const ft = getNullableType(field.type);
      const leaf = isListType(ft) ? getNullableType(ft.ofType) : ft;
      if (isListType(leaf) || !isTextual(leaf))
        return `${t.name}.${field.name} is not a scalar, enum or list of them, so ${t.name} cannot be a query parameter`;
    }
    return { style: 'deepObject' };
  }
  return isTextual(t) ? { style: 'form' } : `${String(t)} values cannot travel in the query string; send them in a body`;
}

/** Records, for each variable used in the root field's arguments, the argument it feeds. */
function variableUses(field: GraphQLField<unknown, unknown>, node: FieldNode): Map<string, VariableUse> {
  const uses = new Map<string, VariableUse>();
  const walk = (value: ValueNode, type: GraphQLInputType, path: string, description: string | undefined, defaultValue: unknown) => {
    if (value.kind === Kind.VARIABLE) {
      if (!uses.has(value.name.value)) uses.set(value.name.value, { argumentPath: path, description, defaultValue });
      return;
    }
    const t = getNullableType(type);
    if (value.kind === Kind.OBJECT && isInputObjectType(t)) {
      const fields = t.getFields();
      for (const f of value.fields) {
        const def = fields[f.name.value];
        if (def) walk(f.value, def.type, `${path}.${f.name.value}`, def.description ?? undefined, def.defaultValue);
      }
    }
  };
  for (const arg of node.arguments ?? []) {
    const def = field.args.find((a) => a.name === arg.name.value);
    if (def) walk(arg.value, def.type, arg.name.value, def.description ?? undefined, def.defaultValue);
  }
  return uses;
}

function firstSentence(text: string | null | undefined): string | undefined {
  if (!text) return undefined;
  const line = text.split('\n')[0]?.trim() ?? '';
  const sentence = /^(.+?[.!?])(\s|$)/.exec(line)?.[1] ?? line;
  return sentence.replace(/[.]$/, '') || undefined;
}

function words(operationId: string): string {
  const spaced = operationId.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function compileRoute(schema: GraphQLSchema, builder: SchemaBuilder, declaration: RouteDeclaration, problems: string[]): RouteModel | undefined {
  const errors = validate(schema, parse(declaration.document));
  if (errors.length > 0) {
    problems.push(...errors.map((e) => e.message));
    return undefined;
  }
  const { operation } = declaration;
  const rootType: GraphQLObjectType | null | undefined = operation.operation === 'query' ? schema.getQueryType() : schema.getMutationType();
  const node = operation.selectionSet.selections[0] as FieldNode;
  const field = rootType?.getFields()[node.name.value];
  if (!rootType || !field) {
    problems.push(`${node.name.value} is not a root field`);
    return undefined;
  }
  const uses = variableUses(field, node);

  const variables = (operation.variableDefinitions ?? []).map((v) => {
    const name = v.variable.name.value;
    const type = typeFromAST(schema, v.type) as GraphQLInputType;
    const use = uses.get(name);
    const ownDefault = v.defaultValue ? valueFromAST(v.defaultValue, type) : undefined;
    return {
      name,
      type,
      description: use?.description,
      defaultValue: ownDefault ?? use?.defaultValue,
      // A variable with a default may be omitted even when its type is non-null.
      required: isNonNullType(type) && v.defaultValue === undefined,
    };
  });

  const inPath = new Set(declaration.pathParams);
  const hasBody = declaration.method === 'POST' || declaration.method === 'PUT' || declaration.method === 'PATCH';
  const inQuery = new Set(hasBody ? declaration.queryVariables : variables.filter((v) => !inPath.has(v.name)).map((v) => v.name));
  const bodyVariables = variables.filter((v) => !inPath.has(v.name) && !inQuery.has(v.name));

  const parameters: ParameterModel[] = [];
  const defaults = new Map<string, unknown>();
  const argumentSources = new Map<string, ValueSource>();
  for (const v of variables) {
    if (v.defaultValue !== undefined) defaults.set(v.name, v.defaultValue);
    const argumentPath = uses.get(v.name)?.argumentPath;
    if (inPath.has(v.name) || inQuery.has(v.name)) {
      const where: ParameterLocation = inPath.has(v.name) ? 'path' : 'query';
      let style: ParameterModel['style'] = 'simple';
      if (where === 'path') {
        if (!isTextual(v.type) || isListType(getNullableType(v.type))) problems.push(`path placeholder {${v.name}} must be a scalar or enum variable`);
      } else {
        const fit = queryStyle(v.type);
        if (typeof fit === 'string') problems.push(`query parameter ${v.name}: ${fit}`);
        else style = fit.style;
      }
      // A parameter cannot be null, only absent: its schema is the non-null type's.
      let paramSchema = builder.inputValue(v.type);
      if (v.defaultValue !== undefined) paramSchema = { ...paramSchema, default: v.defaultValue };
      parameters.push({
        name: v.name,
        in: where,
        required: where === 'path' || v.required,
        style,
        schema: paramSchema,
        type: v.type,
        description: v.description,
      });
      if (argumentPath) argumentSources.set(argumentPath, { in: where, name: v.name, path: [] });
    }
  }

  let body: BodyModel | undefined;
  if (bodyVariables.length > 0) {
    const only = bodyVariables.length === 1 ? bodyVariables[0] : undefined;
    const onlyType = only ? getNullableType(only.type) : undefined;
    if (only && onlyType && isInputObjectType(onlyType)) {
      body = {
        mode: 'whole',
        variables: [only.name],
        required: only.required,
        schema: builder.inputValue(onlyType),
        inputTypeFields: new Set(Object.keys(onlyType.getFields())),
      };
      const argumentPath = uses.get(only.name)?.argumentPath;
      if (argumentPath) argumentSources.set(argumentPath, { in: 'body', path: [] });
    } else {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const v of bodyVariables) {
        let property = builder.input(v.type);
        if (v.description) property = { ...property, description: v.description };
        if (v.defaultValue !== undefined) property = { ...property, default: v.defaultValue };
        properties[v.name] = property;
        if (v.required) required.push(v.name);
        const argumentPath = uses.get(v.name)?.argumentPath;
        if (argumentPath) argumentSources.set(argumentPath, { in: 'body', path: [v.name] });
      }
      body = {
        mode: 'properties',
        variables: bodyVariables.map((v) => v.name),
        required: required.length > 0,
        schema: { type: 'object', properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false },
        inputTypeFields: new Set(),
      };
    }
  }

  let response: JsonSchema;
  try {
    response = builder.outputValue(field.type as GraphQLOutputType, node.selectionSet);
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
  if (declaration.location) {
    const fields = builder.topLevelProperties(response);
    for (const placeholder of declaration.location.match(/\{(\w+)\}/g) ?? []) {
      const name = placeholder.slice(1, -1);
      if (!fields.includes(name)) problems.push(`@location placeholder {${name}} is not a field of the response`);
    }
  }

  return {
    declaration,
    summary: declaration.summary ?? firstSentence(field.description) ?? words(declaration.operationId),
    description: [declaration.description, field.description ?? undefined].filter((d): d is string => !!d).join('\n\n') || undefined,
    parameters,
    body,
    responseKey: node.alias?.value ?? node.name.value,
    resourceName: getNamedType(field.type).name,
    resourceDescription: getNamedType(field.type).description ?? undefined,
    nullable: !isNonNullType(field.type),
    response,
    argumentSources,
    defaults,
  };
}

/**
 * Compiles every route against the schema. A route whose operation no longer fits (after a
 * supergraph change) is listed as unavailable with the reasons instead of failing the others.
 */
export function compileRoutes(schema: GraphQLSchema, operations: OperationSet): CompiledRoutes {
  const builder = new SchemaBuilder(schema, operations.fragments);
  const routes: RouteModel[] = [];
  const unavailable: CompiledRoutes['unavailable'] = [];
  for (const declaration of operations.routes) {
    const problems: string[] = [];
    const model = compileRoute(schema, builder, declaration, problems);
    if (model && problems.length === 0) routes.push(model);
    else unavailable.push({ declaration, reasons: problems });
  }
  return { routes, unavailable, components: builder.componentSchemas(), tags: operations.tags };
}
