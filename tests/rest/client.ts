// Test helpers for the REST facade: a small HTTP client, and response checking against the served
// OpenAPI document with ajv set up independently of the facade's own validation code (the
// document is registered whole; route schemas are checked through JSON pointers into it).
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { withDefaultAuth } from '../support/processes.ts';

export interface RestResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown;
  text: string;
}

export interface RestRequest {
  query?: string | Record<string, string>;
  body?: unknown;
  /** Sent as is, instead of JSON.stringify(body). */
  rawBody?: string;
  headers?: Record<string, string>;
}

export async function rest(base: string, method: string, path: string, request: RestRequest = {}): Promise<RestResponse> {
  const query = typeof request.query === 'string' ? request.query : request.query ? new URLSearchParams(request.query).toString() : '';
  const hasBody = request.rawBody !== undefined || request.body !== undefined;
  const res = await fetch(`${base}${path}${query ? `?${query}` : ''}`, {
    method,
    // As the tests' default admin unless request.headers carry other credentials.
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), accept: 'application/json', ...(await withDefaultAuth(request.headers)) },
    ...(hasBody ? { body: request.rawBody ?? JSON.stringify(request.body) } : {}),
  });
  const text = await res.text();
  let body: unknown;
  if (text !== '' && /json/.test(res.headers.get('content-type') ?? '')) {
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 300)}`);
    }
  }
  return { status: res.status, headers: res.headers, body, text };
}

export type OpenApiOperation = {
  operationId: string;
  parameters?: { name: string; in: string; required: boolean; style?: string; schema: Record<string, unknown> }[];
  requestBody?: { required: boolean; content: Record<string, { schema: Record<string, unknown>; example?: unknown }> };
  responses: Record<string, { $ref?: string; content?: Record<string, { schema: unknown }> }>;
  'x-graphql-operation': string;
};

export interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, Record<string, unknown>>; responses: Record<string, { content: Record<string, { schema: unknown }> }> };
}

export interface DocumentedOperation {
  method: string;
  path: string;
  operation: OpenApiOperation;
}

export function operationsOf(doc: OpenApiDoc): DocumentedOperation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

export class DocumentChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly cache = new Map<string, ValidateFunction>();
  readonly operations: DocumentedOperation[];

  constructor(readonly doc: OpenApiDoc) {
    addFormats.default(this.ajv);
    this.ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
    this.ajv.addFormat('double', { type: 'number', validate: () => true });
    this.ajv.addSchema(doc as unknown as object, 'urn:test:openapi');
    this.operations = operationsOf(doc);
  }

  operation(operationId: string): DocumentedOperation {
    const found = this.operations.find((o) => o.operation.operationId === operationId);
    if (!found) throw new Error(`no operation ${operationId} in the document`);
    return found;
  }

  /** ajv's errors for a response to this operation (with the declared status and media type), or [] when it conforms. */
  check(operationId: string, response: RestResponse): string[] {
    const { path, method, operation } = this.operation(operationId);
    const declared = operation.responses[String(response.status)] ?? operation.responses.default;
    if (!declared) return [`status ${response.status} is not declared for ${operationId}`];
    let pointer = `#/paths/${escapePointer(path)}/${method.toLowerCase()}/responses/${response.status in operation.responses ? response.status : 'default'}`;
    let target = declared;
    if (declared.$ref) {
      pointer = declared.$ref;
      target = this.doc.components.responses[declared.$ref.split('/').pop() ?? ''] ?? {};
    }
    if (!target.content) return response.text === '' ? [] : [`status ${response.status} declares no body, got ${response.text.slice(0, 200)}`];
    const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!(mediaType in target.content))
      return [`content-type ${mediaType} is not declared for ${operationId} ${response.status} (declared: ${Object.keys(target.content).join(', ')})`];
    const ref = `urn:test:openapi${pointer}/content/${escapePointer(mediaType)}/schema`;
    let validate = this.cache.get(ref);
    if (!validate) {
      // JSON pointers inside a URI fragment: characters such as {} must be percent-encoded.
      validate = this.ajv.compile({ $ref: ref.replace(/[{}]/g, (c) => encodeURIComponent(c)) });
      this.cache.set(ref, validate);
    }
    return validate(response.body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`);
  }

  /** A component schema's required properties (for building invalid bodies). */
  requiredOf(schema: Record<string, unknown>): string[] {
    const ref = schema.$ref;
    const target = typeof ref === 'string' ? this.doc.components.schemas[ref.split('/').pop() ?? ''] : schema;
    return (target?.required as string[] | undefined) ?? [];
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: string;
  requestId: string;
  errors?: { pointer?: string; parameter?: string; detail: string }[];
}

export function asProblem(response: RestResponse): ProblemBody {
  if (!(response.headers.get('content-type') ?? '').startsWith('application/problem+json')) {
    throw new Error(`expected application/problem+json, got ${response.headers.get('content-type')} (${response.status}): ${response.text.slice(0, 300)}`);
  }
  return response.body as ProblemBody;
}
