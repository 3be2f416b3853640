import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphQLError, Kind, parse, print, type DocumentNode, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { fragmentsUsed } from '../graphql-documents.ts';

/**
 * Reads the REST routes: every operation in gateway/rest/operations/<tag>.graphql is one route,
 * declared by the comment block directly above it:
 *
 *   # @route POST /v1/agents            method and path; {name} segments are variables
 *   # @status 201                       success status (200 by default)
 *   # @null 204                         when the root field is null: 204, or 404 (the default)
 *   # @location /v1/agents/{id}         Location header of the answer, filled from its fields
 *   # @query expectedVersion            for POST/PUT/PATCH: variables sent as query parameters
 *   # @tag agents                       defaults to the file name
 *   # @summary Register an agent        defaults to the root field's description
 *   # @example {"name": "Summariser"}   request body example (checked against the body schema)
 *   # @param-example label {"key": "team"}  a query parameter's example (checked against its schema):
 *                                       what Swagger UI's "Try it out" sends for an object parameter
 *   # Any other comment line is the route's description, in front of the SDL field's.
 *
 * The comment block at the top of a file, separated from the first definition by a blank line,
 * describes the file's tag. Fragments may be shared between files.
 */

export const OPERATIONS_DIR = fileURLToPath(new URL('./operations/', import.meta.url));

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

export interface RouteDeclaration {
  /** The operation name; also the OpenAPI operationId. */
  operationId: string;
  file: string;
  method: HttpMethod;
  /** The path template, e.g. /v1/agents/{id}. */
  path: string;
  /** Names of the {placeholders} in the path, in order. */
  pathParams: string[];
  status: 200 | 201 | 202;
  nullStatus: 204 | 404;
  location: string | undefined;
  /** Variables that travel in the query string although the method has a body. */
  queryVariables: string[];
  tag: string;
  summary: string | undefined;
  description: string | undefined;
  example: unknown;
  /** Examples of query parameters, by variable name (@param-example). */
  parameterExamples: Record<string, unknown>;
  operation: OperationDefinitionNode;
  /** The operation and every fragment it uses, printed: what is sent to the executor. */
  document: string;
}

export interface TagDeclaration {
  name: string;
  description: string | undefined;
}

export interface OperationSet {
  routes: RouteDeclaration[];
  fragments: Map<string, FragmentDefinitionNode>;
  tags: TagDeclaration[];
}

export class OperationFileError extends Error {
  constructor(problems: string[]) {
    super(`REST operations are invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'OperationFileError';
  }
}

export interface OperationFile {
  /** The file name, e.g. agents.graphql; its base name is the default tag. */
  name: string;
  text: string;
}

export function readOperationFiles(dir = OPERATIONS_DIR): OperationFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
}

export function loadOperations(dir = OPERATIONS_DIR): OperationSet {
  return parseOperationFiles(readOperationFiles(dir));
}

interface CommentBlock {
  annotations: [key: string, value: string, line: number][];
  text: string[];
}

/** The comment lines directly above `line` (1-based), stopping at a blank or code line. */
function commentAbove(lines: string[], line: number): CommentBlock {
  const block: string[] = [];
  const numbers: number[] = [];
  for (let i = line - 2; i >= 0; i--) {
    const l = (lines[i] ?? '').trim();
    if (!l.startsWith('#')) break;
    block.unshift(l);
    numbers.unshift(i + 1);
  }
  return parseComment(block, numbers);
}

function parseComment(block: string[], numbers: number[]): CommentBlock {
  const out: CommentBlock = { annotations: [], text: [] };
  block.forEach((raw, i) => {
    const l = raw.replace(/^#\s?/, '');
    const m = /^@([\w-]+)\s*(.*)$/.exec(l.trim());
    if (m) out.annotations.push([m[1] ?? '', (m[2] ?? '').trim(), numbers[i] ?? 0]);
    else out.text.push(l);
  });
  return out;
}

/** Comment lines joined into Markdown: single newlines within a paragraph become spaces. */
function markdown(text: string[]): string | undefined {
  const joined = text
    .join('\n')
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter((p) => p !== '')
    .join('\n\n');
  return joined === '' ? undefined : joined;
}

function fileComment(lines: string[], firstDefinitionLine: number): string | undefined {
  const block: string[] = [];
  let i = 0;
  for (; i < lines.length && (lines[i] ?? '').trim().startsWith('#'); i++) block.push((lines[i] ?? '').trim());
  // A block running straight into the first definition belongs to that definition.
  if (block.length === 0 || i + 1 >= firstDefinitionLine) return undefined;
  return markdown(parseComment(block, []).text);
}

// `.well-known` and file-like segments (duadp.json) serve the discovery standards' fixed paths.
const SEGMENT = /^(?:\.well-known|[a-z0-9][a-z0-9.-]*|\{[A-Za-z_][A-Za-z0-9_]*\})$/;

export function parseOperationFiles(files: OperationFile[]): OperationSet {
  const problems: string[] = [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  const parsed: { file: OperationFile; document: DocumentNode; lines: string[] }[] = [];
  const tags: TagDeclaration[] = [];

  for (const file of files) {
    let document: DocumentNode;
    try {
      document = parse(file.text);
    } catch (err) {
      const where = err instanceof GraphQLError && err.locations?.[0] ? `:${err.locations[0].line}:${err.locations[0].column}` : '';
      problems.push(`${file.name}${where}: ${(err as Error).message}`);
      continue;
    }
    const lines = file.text.split('\n');
    parsed.push({ file, document, lines });
    const first = document.definitions[0]?.loc?.startToken.line ?? lines.length + 1;
    tags.push({ name: basename(file.name, '.graphql'), description: fileComment(lines, first) });
    for (const def of document.definitions) {
      if (def.kind !== Kind.FRAGMENT_DEFINITION) continue;
      if (fragments.has(def.name.value)) problems.push(`${file.name}: fragment ${def.name.value} is defined more than once`);
      fragments.set(def.name.value, def);
    }
  }

  const routes: RouteDeclaration[] = [];
  const byName = new Map<string, string>();
  const byRoute = new Map<string, string>();
  for (const { file, document, lines } of parsed) {
    for (const def of document.definitions) {
      if (def.kind === Kind.FRAGMENT_DEFINITION) continue;
      const line = def.loc?.startToken.line ?? 0;
      const at = `${file.name}:${line}`;
      if (def.kind !== Kind.OPERATION_DEFINITION) {
        problems.push(`${at}: only operations and fragments belong here`);
        continue;
      }
      const name = def.name?.value;
      if (!name) {
        problems.push(`${at}: every operation needs a name (it becomes the operationId)`);
        continue;
      }
      const where = `${file.name}:${line} (${name})`;
      if (byName.has(name)) problems.push(`${where}: operation name already used in ${byName.get(name)}`);
      byName.set(name, file.name);
      if (def.operation === 'subscription') problems.push(`${where}: subscriptions have no REST route; use the GraphQL subscription transports`);
      const root = def.selectionSet.selections;
      if (root.length !== 1 || root[0]?.kind !== Kind.FIELD) {
        problems.push(`${where}: select exactly one root field (the resource the route answers with)`);
      }

      const comment = commentAbove(lines, line);
      const seen = new Set<string>();
      let method: HttpMethod | undefined;
      let path: string | undefined;
      let status: RouteDeclaration['status'] = 200;
      let nullStatus: RouteDeclaration['nullStatus'] = 404;
      let location: string | undefined;
      let tag = basename(file.name, '.graphql');
      let summary: string | undefined;
      let example: unknown;
      const parameterExamples: Record<string, unknown> = {};
      const queryVariables: string[] = [];
      for (const [key, value, annotationLine] of comment.annotations) {
        const here = `${file.name}:${annotationLine} (${name})`;
        if (seen.has(key) && key !== 'query' && key !== 'param-example') problems.push(`${here}: @${key} is given twice`);
        seen.add(key);
        switch (key) {
          case 'route': {
            const m = /^(\S+)\s+(\S+)$/.exec(value);
            const candidate = m?.[1]?.toUpperCase();
            if (!m || !METHODS.includes(candidate as HttpMethod)) {
              problems.push(`${here}: @route must be "<${METHODS.join('|')}> /path", got "${value}"`);
              break;
            }
            method = candidate as HttpMethod;
            path = m[2];
            break;
          }
          case 'status':
            if (value === '200' || value === '201' || value === '202') status = Number(value) as 200 | 201 | 202;
            else problems.push(`${here}: @status must be 200, 201 or 202, got "${value}"`);
            break;
          case 'null':
            if (value === '204' || value === '404') nullStatus = Number(value) as 204 | 404;
            else problems.push(`${here}: @null must be 204 or 404, got "${value}"`);
            break;
          case 'location':
            location = value;
            break;
          case 'query':
            queryVariables.push(...value.split(/[\s,]+/).filter((v) => v !== ''));
            break;
          case 'tag':
            if (!/^[a-z][a-z0-9-]*$/.test(value)) problems.push(`${here}: @tag must be lower-case kebab-case, got "${value}"`);
            tag = value;
            break;
          case 'summary':
            summary = value;
            break;
          case 'example':
            try {
              example = JSON.parse(value);
            } catch (err) {
              problems.push(`${here}: @example is not JSON: ${(err as Error).message}`);
            }
            break;
          case 'param-example': {
            const m = /^(\w+)\s+(.+)$/.exec(value);
            if (!m) {
              problems.push(`${here}: @param-example must be "<variable> <JSON>", got "${value}"`);
              break;
            }
            try {
              parameterExamples[m[1] ?? ''] = JSON.parse(m[2] ?? '');
            } catch (err) {
              problems.push(`${here}: @param-example ${m[1]} is not JSON: ${(err as Error).message}`);
            }
            break;
          }
          default:
            problems.push(`${here}: unknown annotation @${key}`);
        }
      }
      if (!method || !path) {
        problems.push(`${where}: needs a "# @route <METHOD> /path" comment directly above it`);
        continue;
      }

      const segments = path.split('/').slice(1);
      if (!path.startsWith('/') || segments.some((s) => !SEGMENT.test(s))) {
        problems.push(`${where}: path "${path}" must be /-separated lower-case kebab-case segments or {variable} placeholders`);
      }
      const pathParams = segments.filter((s) => s.startsWith('{')).map((s) => s.slice(1, -1));
      const variables = new Set((def.variableDefinitions ?? []).map((v) => v.variable.name.value));
      for (const p of pathParams) if (!variables.has(p)) problems.push(`${where}: path placeholder {${p}} is not a variable of the operation`);
      if (new Set(pathParams).size !== pathParams.length) problems.push(`${where}: a path placeholder is used twice`);
      for (const p of Object.keys(parameterExamples)) if (!variables.has(p)) problems.push(`${where}: @param-example ${p} is not a variable of the operation`);
      for (const q of queryVariables) {
        if (!variables.has(q)) problems.push(`${where}: @query ${q} is not a variable of the operation`);
        if (pathParams.includes(q)) problems.push(`${where}: ${q} is a path placeholder and cannot also be a query parameter`);
      }
      if (location) {
        for (const s of location.split('/').slice(1)) if (!SEGMENT.test(s)) problems.push(`${where}: @location "${location}" is not a path template`);
      }
      if (method === 'GET' && def.operation !== 'query') problems.push(`${where}: GET routes must be queries (a GET must not change anything)`);
      if (def.operation === 'query' && method !== 'GET') problems.push(`${where}: queries are served with GET`);
      if (example !== undefined && (method === 'GET' || method === 'DELETE'))
        problems.push(`${where}: @example describes a request body, which ${method} routes have none of`);

      // Two templates that differ only in placeholder names would match the same requests.
      const shape = `${method} ${segments.map((s) => (s.startsWith('{') ? '{}' : s)).join('/')}`;
      if (byRoute.has(shape)) problems.push(`${where}: ${method} ${path} is already the route of ${byRoute.get(shape)}`);
      byRoute.set(shape, name);

      const used = [...fragmentsUsed(def, fragments)].sort();
      const missing = used.filter((f) => !fragments.has(f));
      if (missing.length > 0) problems.push(`${where}: unknown fragment(s) ${missing.join(', ')}`);
      const document = [print(def), ...used.filter((f) => fragments.has(f)).map((f) => print(fragments.get(f) as FragmentDefinitionNode))].join('\n\n');

      routes.push({
        operationId: name,
        file: file.name,
        method,
        path,
        pathParams,
        status,
        nullStatus,
        location,
        queryVariables,
        tag,
        summary,
        description: markdown(comment.text),
        example,
        parameterExamples,
        operation: def,
        document,
      });
    }
  }
  if (problems.length > 0) throw new OperationFileError(problems);
  const usedTags = new Set(routes.map((r) => r.tag));
  return {
    routes,
    fragments,
    tags: tags
      .filter((t) => usedTags.has(t.name))
      .concat([...usedTags].filter((t) => !tags.some((d) => d.name === t)).map((name) => ({ name, description: undefined }))),
  };
}
