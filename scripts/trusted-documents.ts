// Writes the trusted-documents manifest of a client's operations (Apollo's persisted query manifest
// format, what TRUSTED_DOCUMENTS_MANIFEST reads):
//   npm run trusted-documents -- 'client/**/*.graphql' [more files, folders, globs] [--out FILE]
// Each operation is checked against the supergraph the gateway serves (--supergraph, default
// schema/supergraph.graphql; --no-validate to skip). Clients then send exactly the body written
// for an operation, or only its id.
import { readdirSync, readFileSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, validate } from 'graphql';
import { apiSchemaOf, DEFAULT_SUPERGRAPH } from '../gateway/rest/generate.ts';
import { buildManifest, ManifestBuildError, type OperationSource, type PersistedQueryManifest } from '../gateway/trusted-documents/index.ts';

export const DEFAULT_OUT = 'persisted-query-manifest.json';
const EXTENSIONS = ['.graphql', '.gql'];

const USAGE = `usage: npm run trusted-documents -- <file|folder|glob>... [--out FILE] [--supergraph FILE] [--no-validate]
  <file|folder|glob>  GraphQL files with the client's operations and fragments; folders are read
                      recursively (*.graphql, *.gql); globs may use *, ** and ? (quote them)
  --out               where to write the manifest (default: ${DEFAULT_OUT}; - for stdout)
  --supergraph        the supergraph the operations must be valid against (default: schema/supergraph.graphql)
  --no-validate       do not check the operations against the supergraph`;

export class UsageError extends Error {}

function walk(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
}

/** `*` and `?` within a path segment, `**` across segments. */
function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/';
      out += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** The GraphQL files the arguments name, each once, in a stable order. */
export function expandPaths(args: readonly string[], cwd = process.cwd()): string[] {
  const files = new Set<string>();
  for (const arg of args) {
    if (/[*?]/.test(arg)) {
      const absolute = resolve(cwd, arg).split(sep).join('/');
      const base = absolute.slice(0, absolute.search(/[*?]/)).replace(/\/[^/]*$/, '') || '/';
      const pattern = globToRegExp(absolute);
      const found: string[] = [];
      try {
        walk(base, found);
      } catch {
        throw new UsageError(`${arg}: ${base} cannot be read`);
      }
      const matches = found.filter((f) => pattern.test(f.split(sep).join('/')));
      if (matches.length === 0) throw new UsageError(`${arg}: no files match`);
      for (const f of matches) files.add(f);
      continue;
    }
    const path = resolve(cwd, arg);
    let stat: Stats;
    try {
      stat = statSync(path);
    } catch {
      throw new UsageError(`${arg}: no such file or folder`);
    }
    if (stat.isDirectory()) {
      const found: string[] = [];
      walk(path, found);
      const graphql = found.filter((f) => EXTENSIONS.some((e) => f.endsWith(e)));
      if (graphql.length === 0) throw new UsageError(`${arg}: no ${EXTENSIONS.join(' or ')} files in this folder`);
      for (const f of graphql) files.add(f);
    } else files.add(path);
  }
  return [...files].sort();
}

/** Problems of the manifest's operations against the served API schema, each naming its operation. */
export async function validateAgainstSupergraph(manifest: PersistedQueryManifest, supergraphPath: string): Promise<string[]> {
  const schema = await apiSchemaOf(readFileSync(supergraphPath, 'utf8'), supergraphPath);
  return manifest.operations.flatMap((op) => validate(schema, parse(op.body)).map((e) => `${op.name}: ${e.message}`));
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { out: { type: 'string' }, supergraph: { type: 'string' }, 'no-validate': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('name the GraphQL files (or folders, or globs) of the client operations');
  const cwd = process.env.INIT_CWD ?? process.cwd();
  const paths = expandPaths(positionals, cwd);
  const sources: OperationSource[] = paths.map((path) => ({ name: relative(cwd, path) || path, text: readFileSync(path, 'utf8') }));
  const manifest = buildManifest(sources);
  if (!values['no-validate']) {
    const problems = await validateAgainstSupergraph(manifest, values.supergraph ? resolve(cwd, values.supergraph) : DEFAULT_SUPERGRAPH);
    if (problems.length > 0) throw new ManifestBuildError(problems);
  }
  const json = `${JSON.stringify(manifest, null, 2)}\n`;
  const out = values.out ?? DEFAULT_OUT;
  if (out === '-') {
    process.stdout.write(json);
    return;
  }
  writeFileSync(resolve(cwd, out), json);
  console.error(`wrote ${out}: ${manifest.operations.length} operation(s) from ${paths.length} file(s)`);
}

if (process.argv[1] && resolve(process.argv[1]).endsWith('scripts/trusted-documents.ts')) {
  main().catch((err: unknown) => {
    const badArguments = err instanceof UsageError || String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    if (badArguments) console.error(`${(err as Error).message}\n${USAGE}`);
    else if (err instanceof ManifestBuildError) console.error(err.message);
    else console.error(err);
    process.exit(1);
  });
}
