import { STATUS_CODES, type ServerResponse } from 'node:http';

/**
 * Errors of the REST facade as `application/problem+json` (RFC 9457). `type` is `about:blank`
 * (the status says what kind of problem it is, `title` is its reason phrase); the extension
 * `code` carries the same machine-readable code a GraphQL client gets in `extensions.code`, and
 * `errors` points at each offending request value.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface FieldError {
  /** A JSON Pointer (RFC 6901) into the request body, as a URI fragment: `#/skills/0/id`. */
  pointer?: string;
  /** The path or query parameter at fault, e.g. `first` or `label[key]`. */
  parameter?: string;
  detail: string;
}

export interface Problem {
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  /** The request path that failed. */
  instance: string;
  code: string;
  /** The x-request-id of the request, also in the service's log lines. */
  requestId: string;
  errors?: FieldError[];
}

export function problem(status: number, code: string, detail: string, where: { instance: string; requestId: string }, errors?: FieldError[]): Problem {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance: where.instance,
    code,
    requestId: where.requestId,
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
}

export function sendProblem(res: ServerResponse, body: Problem, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(body.status, { ...headers, 'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** A JSON Pointer fragment from path segments, escaped per RFC 6901. */
export function pointer(segments: readonly string[]): string {
  return `#${segments.map((s) => `/${s.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('')}`;
}
