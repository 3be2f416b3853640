// Apollo's persisted query manifest, the format of the client operations the gateway trusts:
//   { "format": "apollo-persisted-query-manifest", "version": 1,
//     "operations": [{ "id": "<sha256 of body>", "name": "GetAgent", "type": "query", "body": "query GetAgent …" }] }
// what @apollo/generate-persisted-query-manifest writes and `npm run trusted-documents` writes.
import { Ajv, type ErrorObject } from 'ajv';
import { Kind, parse, print, type DocumentNode, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { fragmentsUsed } from '../graphql-documents.ts';
import { documentIdOf } from './documents.ts';

export const MANIFEST_FORMAT = 'apollo-persisted-query-manifest';

export type OperationType = 'query' | 'mutation' | 'subscription';

export interface ManifestOperation {
  id: string;
  name: string;
  type: OperationType;
  body: string;
}

export interface PersistedQueryManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  operations: ManifestOperation[];
}

// Extra properties are allowed: the format may grow fields this gateway does not need.
const manifestSchema = {
  type: 'object',
  required: ['format', 'version', 'operations'],
  properties: {
    format: { const: MANIFEST_FORMAT },
    version: { const: 1 },
    operations: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'name', 'type', 'body'],
        properties: {
          id: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          name: { type: 'string' },
          type: { enum: ['query', 'mutation', 'subscription'] },
          body: { type: 'string', minLength: 1 },
        },
      },
    },
  },
} as const;

const validateManifest = new Ajv({ allErrors: true }).compile<PersistedQueryManifest>(manifestSchema);

function describe(error: ErrorObject): string {
  const where = error.instancePath === '' ? 'the manifest' : error.instancePath.slice(1);
  if (error.keyword === 'const') return `${where} must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}`;
  if (error.keyword === 'enum') return `${where} must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  if (error.keyword === 'pattern' && where.endsWith('/id')) return `${where} must be a lower-case hex SHA-256 (64 characters)`;
  return `${where} ${error.message ?? 'is invalid'}`;
}

/**
 * The problems of a parsed manifest file, each naming where (e.g. "operations/2 (GetAgent): …"),
 * or the operations when there are none. Beyond the shape: each id is the SHA-256 of its body, and
 * each body parses and holds the operation its name and type announce.
 */
export function checkManifest(value: unknown): { operations: ManifestOperation[]; problems: string[] } {
  if (!validateManifest(value)) return { operations: [], problems: (validateManifest.errors ?? []).map(describe) };
  const problems: string[] = [];
  value.operations.forEach((op, index) => {
    const where = `operations/${index} (${op.name || 'unnamed'})`;
    const expected = documentIdOf(op.body);
    if (op.id !== expected) problems.push(`${where}: id is not the SHA-256 of its body (that would be ${expected})`);
    let document: DocumentNode;
    try {
      document = parse(op.body, { noLocation: true });
    } catch (err) {
      problems.push(`${where}: body is not GraphQL: ${(err as Error).message}`);
      return;
    }
    const operation = document.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && (d.name?.value ?? '') === op.name);
    if (!operation) problems.push(`${where}: body has no operation named "${op.name}"`);
    else if (operation.operation !== op.type) problems.push(`${where}: type is "${op.type}" but the operation is a ${operation.operation}`);
  });
  return { operations: value.operations, problems };
}

export interface OperationSource {
  /** Shown in problems. */
  name: string;
  text: string;
}

export class ManifestBuildError extends Error {
  constructor(readonly problems: string[]) {
    super(`Cannot build the manifest:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ManifestBuildError';
  }
}

/**
 * A manifest of every operation in the given GraphQL files (fragments may live in any of them).
 * Each body is the operation followed by the fragments it uses, sorted by name, printed by
 * graphql-js: clients must send exactly that text (or its id). Operations are sorted by name so
 * the output is stable.
 */
export function buildManifest(sources: readonly OperationSource[]): PersistedQueryManifest {
  const problems: string[] = [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  const operations: { source: string; definition: OperationDefinitionNode }[] = [];
  for (const source of sources) {
    let document: DocumentNode;
    try {
      document = parse(source.text, { noLocation: true });
    } catch (err) {
      problems.push(`${source.name}: ${(err as Error).message}`);
      continue;
    }
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) {
        if (fragments.has(definition.name.value)) problems.push(`${source.name}: fragment ${definition.name.value} is defined twice`);
        fragments.set(definition.name.value, definition);
      } else if (definition.kind === Kind.OPERATION_DEFINITION) {
        if (!definition.name) problems.push(`${source.name}: an anonymous ${definition.operation}; give every operation a name`);
        else operations.push({ source: source.name, definition });
      } else {
        problems.push(`${source.name}: only operations and fragments belong in client documents, found a ${definition.kind}`);
      }
    }
  }
  const seen = new Map<string, string>();
  const out: ManifestOperation[] = [];
  for (const { source, definition } of operations) {
    const name = definition.name?.value ?? '';
    const before = seen.get(name);
    if (before !== undefined) problems.push(`${source}: operation ${name} is also defined in ${before}`);
    seen.set(name, source);
    const used = [...fragmentsUsed(definition, fragments)].sort();
    const missing = used.filter((f) => !fragments.has(f));
    if (missing.length > 0) problems.push(`${source}: ${name} uses unknown fragment(s) ${missing.join(', ')}`);
    const body = [print(definition), ...used.filter((f) => fragments.has(f)).map((f) => print(fragments.get(f) as FragmentDefinitionNode))].join('\n\n');
    out.push({ id: documentIdOf(body), name, type: definition.operation, body });
  }
  if (sources.length > 0 && operations.length === 0 && problems.length === 0) problems.push('no operations found in the given files');
  if (problems.length > 0) throw new ManifestBuildError(problems);
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { format: MANIFEST_FORMAT, version: 1, operations: out };
}
