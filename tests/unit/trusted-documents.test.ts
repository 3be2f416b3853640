// Trusted documents in isolation: the decision every transport asks for, the manifest check the
// gateway starts with, and the manifest `npm run trusted-documents` builds.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphQLError } from 'graphql';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../runtime/config.ts';
import { loadOperations } from '../../gateway/rest/operations.ts';
import {
  buildManifest,
  checkManifest,
  createRegistry,
  documentIdOf,
  loadTrustedDocuments,
  ManifestBuildError,
  resolveTrustedDocument,
  subscriptionDocumentGate,
} from '../../gateway/trusted-documents/index.ts';
import { createLogger } from '../../runtime/logger.ts';
import type { OperationRequest } from '../../runtime/subscriptions.ts';
import { expandPaths } from '../../scripts/trusted-documents.ts';

const LIST = 'query List { agents { totalCount } }';
const registry = createRegistry('enforce', [LIST]);
const id = documentIdOf(LIST);

/** The problems of the error fn throws (ConfigError, ManifestBuildError); fails when it throws none. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof ManifestBuildError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError or ManifestBuildError');
}

function refusal(result: ReturnType<typeof resolveTrustedDocument>): { code: unknown; status: unknown } {
  if (!(result instanceof GraphQLError)) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return { code: result.extensions.code, status: (result.extensions.http as { status?: unknown }).status };
}

describe('resolveTrustedDocument', () => {
  it('accepts a registered body as sent, and an id in any of its spellings', () => {
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(resolveTrustedDocument(registry, { query: LIST })).toEqual({ id, query: LIST });
    expect(resolveTrustedDocument(registry, { extensions: { persistedQuery: { version: 1, sha256Hash: id } } })).toEqual({ id, query: LIST });
    expect(resolveTrustedDocument(registry, { documentId: id })).toEqual({ id, query: LIST });
    expect(resolveTrustedDocument(registry, { documentId: `sha256:${id.toUpperCase()}` })).toEqual({ id, query: LIST });
    // graphql-ws and SSE must send a query string: "" stands for none.
    expect(resolveTrustedDocument(registry, { query: '', documentId: id })).toEqual({ id, query: LIST });
    expect(resolveTrustedDocument(registry, { query: LIST, documentId: id })).toEqual({ id, query: LIST });
  });

  it('refuses an unregistered body, even one differing only in whitespace (403 OPERATION_NOT_TRUSTED)', () => {
    expect(refusal(resolveTrustedDocument(registry, { query: '{ agents { totalCount } }' }))).toEqual({ code: 'OPERATION_NOT_TRUSTED', status: 403 });
    expect(refusal(resolveTrustedDocument(registry, { query: `${LIST} ` }))).toEqual({ code: 'OPERATION_NOT_TRUSTED', status: 403 });
    // An unregistered body is refused whatever id comes with it.
    expect(refusal(resolveTrustedDocument(registry, { query: '{ agents { totalCount } }', documentId: id }))).toEqual({
      code: 'OPERATION_NOT_TRUSTED',
      status: 403,
    });
  });

  it('answers an unknown id with 404 PERSISTED_QUERY_NOT_FOUND, and malformed requests with 400 BAD_REQUEST', () => {
    expect(refusal(resolveTrustedDocument(registry, { documentId: 'f'.repeat(64) }))).toEqual({ code: 'PERSISTED_QUERY_NOT_FOUND', status: 404 });
    expect(refusal(resolveTrustedDocument(registry, {}))).toEqual({ code: 'BAD_REQUEST', status: 400 });
    expect(refusal(resolveTrustedDocument(registry, { query: 42 }))).toEqual({ code: 'BAD_REQUEST', status: 400 });
    expect(refusal(resolveTrustedDocument(registry, { documentId: 7 }))).toEqual({ code: 'BAD_REQUEST', status: 400 });
    expect(refusal(resolveTrustedDocument(registry, { documentId: id, extensions: { persistedQuery: { sha256Hash: 'a'.repeat(64) } } }))).toEqual({
      code: 'BAD_REQUEST',
      status: 400,
    });
    const other = createRegistry('enforce', [LIST, '{ __typename }']);
    expect(refusal(resolveTrustedDocument(other, { query: LIST, documentId: documentIdOf('{ __typename }') }))).toEqual({ code: 'BAD_REQUEST', status: 400 });
  });
});

describe('subscriptionDocumentGate', () => {
  const logger = createLogger('test', 'silent');

  it('is absent when off; with enforce refuses, with log lets an unregistered request through unchanged', () => {
    expect(subscriptionDocumentGate(createRegistry('off', [LIST]), logger)).toBeUndefined();
    const enforce = subscriptionDocumentGate<OperationRequest & { documentId?: string }>(registry, logger);
    expect(enforce?.({ query: '', documentId: id, variables: { a: 1 } })).toEqual({ query: LIST, documentId: id, variables: { a: 1 } });
    expect(enforce?.({ query: '{ __typename }' })).toBeInstanceOf(GraphQLError);
    const log = subscriptionDocumentGate<OperationRequest>(createRegistry('log', [LIST]), logger);
    const adHoc = { query: '{ __typename }' };
    expect(log?.(adHoc)).toBe(adHoc);
  });
});

describe('checkManifest', () => {
  const op = (body: string, extra: Record<string, unknown> = {}) => ({ id: documentIdOf(body), name: 'List', type: 'query', body, ...extra });

  it('accepts an Apollo persisted query manifest, extra fields included', () => {
    const { problems, operations } = checkManifest({
      format: 'apollo-persisted-query-manifest',
      version: 1,
      operations: [op(LIST, { clientName: 'web' })],
      generatedAt: 'now',
    });
    expect(problems).toEqual([]);
    expect(operations.map((o) => o.body)).toEqual([LIST]);
  });

  it('names every problem: shape, id, body, name and type', () => {
    expect(checkManifest({ format: 'something-else', version: 2 }).problems).toEqual([
      "the manifest must have required property 'operations'",
      'format must be "apollo-persisted-query-manifest"',
      'version must be 1',
    ]);
    expect(checkManifest({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ ...op(LIST), id: 'XYZ' }] }).problems).toEqual([
      'operations/0/id must be a lower-case hex SHA-256 (64 characters)',
    ]);
    const broken = '{ agents {';
    expect(
      checkManifest({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [{ ...op(LIST), id: 'a'.repeat(64) }, op(broken), op(LIST, { name: 'Other' }), op(LIST, { type: 'mutation' })],
      }).problems,
    ).toEqual([
      `operations/0 (List): id is not the SHA-256 of its body (that would be ${id})`,
      expect.stringMatching(/^operations\/1 \(List\): body is not GraphQL: Syntax Error/),
      'operations/2 (Other): body has no operation named "Other"',
      'operations/3 (List): type is "mutation" but the operation is a query',
    ]);
  });
});

describe('loadTrustedDocuments', () => {
  const restDocuments = () => loadOperations().routes.map((route) => route.document);
  const dir = mkdtempSync(join(tmpdir(), 'trusted-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const manifestFile = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('registers the REST operations (exactly as the facade sends them) and every manifest', () => {
    const path = manifestFile(
      'ok.json',
      JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id, name: 'List', type: 'query', body: LIST }] }),
    );
    const loaded = loadTrustedDocuments({ TRUSTED_DOCUMENTS: 'enforce', TRUSTED_DOCUMENTS_MANIFEST: path }, restDocuments);
    const rest = loadOperations().routes;
    expect(loaded.registry.mode).toBe('enforce');
    for (const route of rest) expect(resolveTrustedDocument(loaded.registry, { query: route.document })).toMatchObject({ query: route.document });
    expect(resolveTrustedDocument(loaded.registry, { documentId: id })).toEqual({ id, query: LIST });
    expect(loaded.summary).toEqual({ mode: 'enforce', documents: rest.length + 1, restOperations: rest.length, manifests: [{ path, operations: 1 }] });
  });

  it('is off by default, and still checks a named manifest then', () => {
    expect(loadTrustedDocuments({}, restDocuments).registry).toMatchObject({ mode: 'off' });
    const notJson = manifestFile('not.json', '{ nope');
    expect(problemsOf(() => loadTrustedDocuments({ TRUSTED_DOCUMENTS_MANIFEST: notJson }, restDocuments))).toEqual([
      expect.stringMatching(new RegExp(`^TRUSTED_DOCUMENTS_MANIFEST: ${notJson}: is not JSON \\(`)),
    ]);
  });
});

describe('buildManifest (npm run trusted-documents)', () => {
  it('gives each operation the fragments it uses, sorted, and ids that are the SHA-256 of the bodies', () => {
    const manifest = buildManifest([
      { name: 'a.graphql', text: 'query B { agents { nodes { ...X } } } fragment X on Agent { id ...Y }' },
      { name: 'b.graphql', text: 'fragment Y on Agent { name } mutation A { retireAgent(id: "1") { id } }' },
    ]);
    expect(manifest.operations.map((o) => o.name)).toEqual(['A', 'B']);
    const b = manifest.operations[1];
    expect(b?.body).toBe(
      'query B {\n  agents {\n    nodes {\n      ...X\n    }\n  }\n}\n\nfragment X on Agent {\n  id\n  ...Y\n}\n\nfragment Y on Agent {\n  name\n}',
    );
    expect(b?.id).toBe(documentIdOf(b?.body ?? ''));
    expect(checkManifest(manifest).problems).toEqual([]);
  });

  it('refuses anonymous and duplicate operations, unknown fragments and schema definitions', () => {
    expect(
      problemsOf(() =>
        buildManifest([
          { name: 'a.graphql', text: '{ agents { totalCount } } query Q { agents { ...Missing } }' },
          { name: 'b.graphql', text: 'query Q { __typename } type T { a: Int }' },
        ]),
      ),
    ).toEqual([
      'a.graphql: an anonymous query; give every operation a name',
      'b.graphql: only operations and fragments belong in client documents, found a ObjectTypeDefinition',
      'a.graphql: Q uses unknown fragment(s) Missing',
      'b.graphql: operation Q is also defined in a.graphql',
    ]);
  });
});

describe('expandPaths (the script’s arguments)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trusted-paths-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes files, folders (recursively) and globs with *, ** and ?', () => {
    mkdirSync(join(dir, 'src/deep'), { recursive: true });
    for (const f of ['src/a.graphql', 'src/deep/b.gql', 'src/deep/c.graphql', 'src/notes.txt', 'top.graphql']) writeFileSync(join(dir, f), '');
    expect(expandPaths(['src'], dir)).toEqual([join(dir, 'src/a.graphql'), join(dir, 'src/deep/b.gql'), join(dir, 'src/deep/c.graphql')]);
    expect(expandPaths(['**/*.graphql'], dir)).toEqual([join(dir, 'src/a.graphql'), join(dir, 'src/deep/c.graphql'), join(dir, 'top.graphql')]);
    expect(expandPaths(['src/*.graphql', 'src/deep/?.gql', 'top.graphql'], dir)).toEqual([
      join(dir, 'src/a.graphql'),
      join(dir, 'src/deep/b.gql'),
      join(dir, 'top.graphql'),
    ]);
    expect(() => expandPaths(['nothing/*.graphql'], dir)).toThrow(/nothing\/\*\.graphql/);
    expect(() => expandPaths(['missing.graphql'], dir)).toThrow(/no such file/);
  });
});
