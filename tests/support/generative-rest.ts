// Generated REST requests for the generative e2e suite: built from the served OpenAPI document
// (path, query and body values from each operation's JSON Schemas), valid or with one value
// broken (a wrong type, a missing required property, an unknown parameter or property, a body
// that is not JSON).
import fc from 'fast-check';
import type { OpenApiDoc, DocumentedOperation } from '../rest/client.ts';
import type { Gen, IdPool } from './generative-graphql.ts';

type Schema = Record<string, unknown>;

export interface GeneratedRestRequest {
  operationId: string;
  method: string;
  path: string;
  query: string;
  /** JSON text, or something that is not JSON on purpose. */
  body?: string;
  contentType?: string;
  broken?: string;
}

/** By index: fc.gen compares the arguments of each draw, and schema objects are cyclic. */
function pick<T>(g: Gen, values: readonly T[]): T {
  return values[g(fc.integer, { min: 0, max: values.length - 1 })] as T;
}

function resolve(doc: OpenApiDoc, schema: Schema): Schema {
  let current = schema;
  for (let i = 0; i < 10 && typeof current.$ref === 'string'; i++) {
    current = doc.components.schemas[(current.$ref as string).split('/').pop() ?? ''] ?? {};
  }
  return current;
}

/** A value valid against the schema (as far as the keywords the document uses go). */
export function validValue(g: Gen, doc: OpenApiDoc, raw: Schema, pool: IdPool, depth = 0, name = ''): unknown {
  const schema = resolve(doc, raw);
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return pick(g, schema.enum as unknown[]);
  if ('const' in schema) return schema.const;
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (alternatives && alternatives.length > 0) return validValue(g, doc, pick(g, alternatives), pool, depth, name);
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : typeof schema.type === 'string' ? [schema.type] : ['string'];
  const type = pick(g, types.filter((t) => t !== 'null').length > 0 && g(fc.integer, { min: 0, max: 5 }) > 0 ? types.filter((t) => t !== 'null') : types);
  switch (type) {
    case 'null':
      return null;
    case 'boolean':
      return g(fc.boolean);
    case 'integer': {
      const min = typeof schema.minimum === 'number' ? schema.minimum : -(2 ** 31);
      const max = typeof schema.maximum === 'number' ? schema.maximum : 2 ** 31 - 1;
      // Mostly small positive counts (what most integers here are), sometimes the edges.
      return g(() =>
        fc.oneof(
          { arbitrary: fc.integer({ min: Math.max(min, 1), max: Math.min(max, 100) }), weight: 3 },
          { arbitrary: fc.integer({ min: Math.max(min, -5), max: Math.min(max, 200) }), weight: 1 },
          { arbitrary: fc.constantFrom(min, max), weight: 1 },
        ),
      );
    }
    case 'number':
      return g(fc.double, { noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });
    case 'array': {
      const minItems = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const n = g(fc.integer, { min: minItems, max: Math.max(minItems, depth > 2 ? minItems : 3) });
      return Array.from({ length: n }, () => validValue(g, doc, (schema.items as Schema | undefined) ?? {}, pool, depth + 1));
    }
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const out: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(properties)) {
        if (required.has(name) || (depth < 3 && g(fc.boolean))) out[name] = validValue(g, doc, property, pool, depth + 1, name);
      }
      // A free-form object (JSON): a little JSON.
      if (Object.keys(properties).length === 0 && schema.additionalProperties !== false)
        return g(fc.dictionary, fc.string({ minLength: 1, maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
      return out;
    }
    default: {
      if (schema.format === 'date-time') return g(fc.date, { noInvalidDate: true, min: new Date('2000-01-01'), max: new Date('2100-01-01') }).toISOString();
      const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
      const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : 40;
      // Ids are mostly ones that exist, so lookups and changes get past "not found".
      if (/^id$|Id$/.test(name) && g(fc.integer, { min: 0, max: 3 }) > 0) return pick(g, pool.ids);
      const text = g(() =>
        fc.oneof(
          fc.constantFrom(...pool.ids),
          fc.string({ minLength, maxLength: Math.min(maxLength, 40) }),
          fc.constantFrom('summarize', 'tag-1', 'https://example.com/a2a'),
        ),
      );
      return text.length < minLength ? text.padEnd(minLength, 'x') : text.length > maxLength ? text.slice(0, maxLength) : text;
    }
  }
}

/** A value of the wrong kind for the schema, or undefined when every kind fits (free-form JSON). */
function wrongOf(g: Gen, doc: OpenApiDoc, raw: Schema): unknown {
  const schema = resolve(doc, raw);
  const types = new Set(Array.isArray(schema.type) ? (schema.type as string[]) : typeof schema.type === 'string' ? [schema.type] : []);
  if (types.size === 0 && !schema.enum) return undefined;
  const candidates: unknown[] = [];
  if (!types.has('string')) candidates.push('not-a-number');
  if (!types.has('integer') && !types.has('number')) candidates.push(12.5);
  if (!types.has('object')) candidates.push({ unexpected: true });
  if (!types.has('array')) candidates.push([1, 2]);
  if (!types.has('boolean') && !types.has('string')) candidates.push(true);
  if (schema.enum) candidates.push('NOT_A_MEMBER');
  if (types.has('integer')) candidates.push(2 ** 40, 1.5);
  return candidates.length > 0 ? pick(g, candidates) : undefined;
}

/** Query text no value of the schema is written as (none for a plain string: any text is one). */
function wrongText(g: Gen, schema: Schema): string | undefined {
  const types = new Set(Array.isArray(schema.type) ? (schema.type as string[]) : typeof schema.type === 'string' ? [schema.type] : []);
  if (Array.isArray(schema.enum)) return pick(g, ['NOT_A_MEMBER', 'active', '1']);
  if (types.has('string')) return undefined;
  if (types.has('integer')) return pick(g, ['twelve', '12.5', '1e3', String(2 ** 40), '']);
  if (types.has('number')) return pick(g, ['twelve', 'NaN']);
  if (types.has('boolean')) return pick(g, ['yes', '2']);
  return undefined;
}

/** A query or path value as text, for a valid value of the parameter's schema. */
function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export type RestBreak = 'wrong type' | 'missing required' | 'unknown property' | 'not json' | 'unknown parameter' | 'bad path value';

export function restRequest(g: Gen, doc: OpenApiDoc, operations: DocumentedOperation[], pool: IdPool, breakWith?: RestBreak): GeneratedRestRequest {
  const { method, path, operation } = pick(g, operations);
  let broken: string | undefined;
  const params = operation.parameters ?? [];
  const filledPath = path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (breakWith === 'bad path value' && !broken) {
      broken = `bad path value ${name}`;
      return encodeURIComponent(pick(g, ['%', '..', ' ', 'x'.repeat(300), '💥', '']));
    }
    return encodeURIComponent(asText(validValue(g, doc, (params.find((p) => p.name === name)?.schema ?? { type: 'string' }) as Schema, pool, 0, name)));
  });
  const query = new URLSearchParams();
  for (const param of params.filter((p) => p.in === 'query')) {
    // Optional filters narrow a list to nothing more often than not: one in three is set.
    if (!param.required && g(fc.integer, { min: 0, max: 2 }) > 0) continue;
    const schema = resolve(doc, param.schema as Schema);
    let value = validValue(g, doc, schema, pool, 0, param.name);
    if (breakWith === 'wrong type' && !broken && g(fc.boolean)) {
      const wrong = wrongText(g, schema);
      if (wrong !== undefined) {
        value = wrong;
        broken = `wrong type for parameter ${param.name}`;
      }
    }
    if (param.style === 'deepObject' && typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) query.append(`${param.name}[${k}]`, asText(v));
    } else if (Array.isArray(value)) {
      for (const item of value) query.append(param.name, asText(item));
    } else if (value !== null && value !== undefined) {
      query.append(param.name, asText(value));
    }
  }
  if (breakWith === 'unknown parameter' && !broken) {
    query.append(pick(g, ['unknownParam', 'first[x]', '__proto__']), 'x');
    broken = 'unknown parameter';
  }
  let body: string | undefined;
  let contentType: string | undefined;
  const bodySchema = operation.requestBody?.content['application/json']?.schema as Schema | undefined;
  if (bodySchema) {
    contentType = 'application/json';
    const schema = resolve(doc, bodySchema);
    const value = validValue(g, doc, schema, pool) as Record<string, unknown> | unknown;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    const object = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    if (breakWith && !broken && object) {
      if (breakWith === 'wrong type' && Object.keys(properties).length > 0) {
        const name = pick(g, Object.keys(properties));
        const wrong = wrongOf(g, doc, properties[name]!);
        if (wrong !== undefined) {
          object[name] = wrong;
          broken = `wrong type for body property ${name}`;
        }
      } else if (breakWith === 'missing required' && Array.isArray(schema.required) && schema.required.length > 0) {
        delete object[pick(g, schema.required as string[])];
        broken = 'missing required body property';
      } else if (breakWith === 'unknown property' && schema.additionalProperties === false) {
        object.notAProperty = 1;
        broken = 'unknown body property';
      }
    }
    if (breakWith === 'not json' && !broken) {
      body = pick(g, ['{', '', 'null', '[1,2]', '"text"', '{"a":1}{', '\u0000', 'NaN']);
      broken = 'body not a JSON object';
      if (g(fc.boolean)) contentType = pick(g, ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']);
    } else {
      body = JSON.stringify(value);
    }
  }
  return {
    operationId: operation.operationId,
    method,
    path: filledPath,
    query: query.toString(),
    ...(body !== undefined ? { body } : {}),
    ...(contentType ? { contentType } : {}),
    ...(broken ? { broken } : {}),
  };
}
