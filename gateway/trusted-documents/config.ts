// Which documents the gateway trusts, from the environment: the mode, and the manifests of client
// operations, read and checked once at start (a bad manifest stops the gateway with a ConfigError
// naming the file and the problem). The REST facade's operations are always registered.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, env, loadConfig } from '../../runtime/config.ts';
import { createRegistry, TRUSTED_DOCUMENTS_MODES, type TrustedDocumentRegistry } from './documents.ts';
import { checkManifest } from './manifest.ts';

export const trustedDocumentsSpec = {
  TRUSTED_DOCUMENTS: env.oneOf(
    'which operations run: off (any), log (any; unregistered ones are logged), enforce (only registered ones: the REST operations and TRUSTED_DOCUMENTS_MANIFEST)',
    TRUSTED_DOCUMENTS_MODES,
    'off',
  ),
  TRUSTED_DOCUMENTS_MANIFEST: env.optionalString(
    'comma-separated paths of Apollo persisted query manifests (apollo-persisted-query-manifest, version 1) of the client operations to trust',
  ),
};

export interface TrustedDocuments {
  registry: TrustedDocumentRegistry;
  /** For the start-up log line. */
  summary: { mode: string; documents: number; restOperations: number; manifests: { path: string; operations: number }[] };
}

function readManifest(path: string, problems: string[]): string[] {
  const where = `TRUSTED_DOCUMENTS_MANIFEST: ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${where}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return [];
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    problems.push(`${where}: is not JSON (${(err as Error).message})`);
    return [];
  }
  const checked = checkManifest(value);
  for (const problem of checked.problems) problems.push(`${where}: ${problem}`);
  return checked.problems.length > 0 ? [] : checked.operations.map((op) => op.body);
}

/**
 * The registry for the configured mode. A manifest is read and checked whenever it is named, even
 * with TRUSTED_DOCUMENTS=off, so a broken one shows before enforcement is switched on.
 * `restDocuments` are the documents the gateway's own REST routes send, always registered; the
 * caller (gateway/server.ts) supplies them, so this policy module knows no transport.
 */
export function loadTrustedDocuments(source: Record<string, string | undefined>, restDocuments: () => readonly string[]): TrustedDocuments {
  const c = loadConfig(trustedDocumentsSpec, source);
  const paths = (c.TRUSTED_DOCUMENTS_MANIFEST ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => resolve(p));
  const problems: string[] = [];
  const manifests = paths.map((path) => ({ path, bodies: readManifest(path, problems) }));
  if (problems.length > 0) throw new ConfigError(problems);
  const rest = c.TRUSTED_DOCUMENTS === 'off' ? [] : restDocuments();
  const registry = createRegistry(c.TRUSTED_DOCUMENTS, [...rest, ...manifests.flatMap((m) => m.bodies)]);
  return {
    registry,
    summary: {
      mode: c.TRUSTED_DOCUMENTS,
      documents: registry.byId.size,
      restOperations: rest.length,
      manifests: manifests.map((m) => ({ path: m.path, operations: m.bodies.length })),
    },
  };
}
