import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { COMPONENT_PREFIX, type JsonSchema } from './json-schema.ts';
import { pointer, type FieldError } from './problem.ts';

/**
 * JSON Schema 2020-12 validation (ajv) of request values against the same schemas the OpenAPI
 * document declares, so what the document promises is exactly what is enforced.
 */

const COMPONENT_ID = 'urn:agent-platform:rest:';
const MAX_ERRORS = 50;

/** Component references, `#/components/schemas/X` in the document, are registered ids in ajv. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith(COMPONENT_PREFIX) ? `${COMPONENT_ID}${v.slice(COMPONENT_PREFIX.length)}` : rewriteRefs(v);
  }
  return out;
}

export type Validator = (value: unknown) => ErrorObject[];

export class SchemaValidator {
  private readonly ajv: Ajv2020;

  constructor(components: Record<string, JsonSchema>) {
    this.ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
    // ajv-formats is CommonJS: its function is the default export's `default` under NodeNext.
    addFormats.default(this.ajv);
    this.ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647 });
    this.ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
    for (const [name, schema] of Object.entries(components)) this.ajv.addSchema(rewriteRefs(schema) as object, `${COMPONENT_ID}${name}`);
  }

  compile(schema: JsonSchema): Validator {
    const validate: ValidateFunction = this.ajv.compile(rewriteRefs(schema) as object);
    return (value) => (validate(value) ? [] : (validate.errors ?? []));
  }
}

function describeAllowed(values: unknown): string {
  return Array.isArray(values)
    ? values
        .filter((v) => v !== null)
        .map((v) => JSON.stringify(v))
        .join(', ')
    : '';
}

/** One error per offending value, in words a client can act on. */
function explain(error: ErrorObject): { path: string[]; detail: string } {
  const path =
    error.instancePath === ''
      ? []
      : error.instancePath
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { path: [...path, String(params.missingProperty)], detail: 'is required' };
    case 'additionalProperties':
      return { path: [...path, String(params.additionalProperty)], detail: 'is not a known property here' };
    case 'enum':
      return { path, detail: `must be one of ${describeAllowed(params.allowedValues)}` };
    case 'type': {
      const types = String(params.type)
        .split(',')
        .filter((t) => t !== 'null');
      return { path, detail: `must be ${types.join(' or ')}${String(params.type).includes('null') ? ' or null' : ''}` };
    }
    default:
      return { path, detail: error.message ?? `fails ${error.keyword}` };
  }
}

/**
 * ajv's errors, without the noise of nullable references: for `anyOf: [{$ref}, {type: null}]`
 * the "must be null" branch and the anyOf summary say nothing the other branch does not.
 */
export function fieldErrors(errors: ErrorObject[], place: (path: string[]) => FieldError): FieldError[] {
  const useful = errors.filter((e) => e.keyword !== 'anyOf' && !(e.keyword === 'type' && (e.params as { type?: unknown }).type === 'null'));
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of useful.length > 0 ? useful : errors) {
    const { path, detail } = explain(e);
    const field = { ...place(path), detail };
    const key = JSON.stringify(field);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(field);
    if (out.length >= MAX_ERRORS) break;
  }
  return out;
}

export const bodyError = (path: string[]): FieldError => ({ pointer: pointer(path), detail: '' });

/** A parameter name with the deepObject part, e.g. `label[key]`; list indexes are dropped. */
export function parameterError(name: string): (path: string[]) => FieldError {
  return (path) => ({
    parameter:
      name +
      path
        .filter((s) => !/^\d+$/.test(s))
        .map((s) => `[${s}]`)
        .join(''),
    detail: '',
  });
}
