import { getNamedType, getNullableType, isInputObjectType, isListType, isScalarType, type GraphQLInputType } from 'graphql';
import type { FieldError } from './problem.ts';
import type { ParameterModel } from './route-model.ts';

/**
 * Path and query parameters → variable values. Text is coerced by the variable's GraphQL type
 * (`first=10` → 10, `streaming=true` → true) and left as text when it does not parse, so the
 * JSON Schema check that follows reports it ("must be integer") like any other bad value.
 */

export function coerceText(raw: string, type: GraphQLInputType): unknown {
  const named = getNamedType(type);
  if (!isScalarType(named)) return raw;
  switch (named.name) {
    case 'Int':
      return /^[+-]?\d+$/.test(raw) ? Number(raw) : raw;
    case 'Float':
      return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw) ? Number(raw) : raw;
    case 'Boolean':
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    default:
      return raw;
  }
}

function coerceAll(values: string[], type: GraphQLInputType): unknown {
  const t = getNullableType(type);
  if (isListType(t)) return values.map((v) => coerceText(v, t.ofType));
  return coerceText(values[0] ?? '', t);
}

const KEY = /^([^[\]]+)(?:\[([^[\]]+)\])?$/;

/** The query string's values by parameter, with errors for what this route does not take. */
export function readQuery(search: URLSearchParams, parameters: ParameterModel[]): { values: Record<string, unknown>; errors: FieldError[] } {
  const byName = new Map(parameters.filter((p) => p.in === 'query').map((p) => [p.name, p]));
  const values: Record<string, unknown> = {};
  const errors: FieldError[] = [];
  for (const key of new Set(search.keys())) {
    const all = search.getAll(key);
    const m = KEY.exec(key);
    const param = m ? byName.get(m[1] ?? '') : undefined;
    if (!m || !param) {
      errors.push({ parameter: key, detail: `is not a parameter of this route${byName.size > 0 ? ` (it takes ${[...byName.keys()].join(', ')})` : ''}` });
      continue;
    }
    const sub = m[2];
    const type = getNullableType(param.type);
    if (isInputObjectType(type)) {
      const fields = type.getFields();
      const field = sub === undefined || !Object.hasOwn(fields, sub) ? undefined : fields[sub];
      if (sub === undefined || !field) {
        const fields = Object.keys(type.getFields()).map((f) => `${param.name}[${f}]`);
        errors.push({ parameter: key, detail: `${sub === undefined ? 'is an object' : 'is not a field of it'}: use ${fields.join(', ')}` });
        continue;
      }
      if (!isListType(getNullableType(field.type)) && all.length > 1) {
        errors.push({ parameter: key, detail: 'is given more than once' });
        continue;
      }
      const object = (values[param.name] ??= {}) as Record<string, unknown>;
      object[sub] = coerceAll(all, field.type);
      continue;
    }
    if (sub !== undefined) {
      errors.push({ parameter: key, detail: `${param.name} is not an object; use ${param.name}=<value>` });
      continue;
    }
    if (!isListType(type) && all.length > 1) {
      errors.push({ parameter: key, detail: 'is given more than once' });
      continue;
    }
    values[param.name] = coerceAll(all, type);
  }
  for (const param of byName.values()) {
    if (param.required && !(param.name in values)) errors.push({ parameter: param.name, detail: 'is required' });
  }
  return { values, errors };
}

/** A path segment's value: percent-decoded, then coerced. */
export function readPathParam(raw: string, param: ParameterModel): { value: unknown } | { error: FieldError } {
  try {
    return { value: coerceText(decodeURIComponent(raw), param.type) };
  } catch {
    return { error: { parameter: param.name, detail: 'is not validly percent-encoded' } };
  }
}
