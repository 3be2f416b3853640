// The README's Configuration table is the one list of environment variables: every variable the
// code reads is in it, and every row names a variable the code reads. Read from the sources, so a
// new setting without its row (or a row left behind by a removed one) fails here.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { subgraphs } from '../../subgraphs/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['runtime', 'gateway', 'subgraphs', 'scripts'];
/** Read by the code but not settings of the platform: set by npm and by the test runner. */
const NOT_SETTINGS = new Set(['INIT_CWD', 'VITEST_POOL_ID']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (entry === 'node_modules' || entry === 'generated') continue;
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Variable name → the files that read it. */
function variablesInCode(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (name: string, file: string) => {
    if (NOT_SETTINGS.has(name)) return;
    found.set(name, [...(found.get(name) ?? []), relative(ROOT, file)]);
  };
  for (const file of SOURCE_DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir)))) {
    const text = readFileSync(file, 'utf8');
    // Schema-checked specs: `NAME: env.int(...)`, and in a module that loads a spec, its upper-case keys.
    for (const m of text.matchAll(/\b([A-Z][A-Z0-9_]{2,}): env\./g)) add(m[1]!, file);
    if (text.includes('loadConfig(')) for (const m of text.matchAll(/^\s+([A-Z][A-Z0-9_]{2,}):/gm)) add(m[1]!, file);
    // Direct reads (logging set-up, npm start's own switches).
    for (const m of text.matchAll(/\b(?:process\.env|source)\.([A-Z][A-Z0-9_]{2,})\b/g)) add(m[1]!, file);
  }
  // Variables named after each subgraph.
  for (const name of Object.keys(subgraphs)) {
    add(`${name.toUpperCase()}_PORT`, 'runtime/subgraph.ts');
    add(`SUBGRAPH_${name.toUpperCase()}_URL`, 'gateway/config.ts');
  }
  return found;
}

/** Every `NAME` in the first column of the README's Configuration table (rows may name several). */
function variablesInReadme(): Set<string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Configuration\n');
  const end = readme.indexOf('\n## ', start + 1);
  expect(start).toBeGreaterThan(0);
  const names = new Set<string>();
  for (const line of readme.slice(start, end).split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.split('|')[1] ?? '';
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_<>]+)`/g)) names.add(m[1]!);
  }
  return names;
}

/** `SUBGRAPH_<NAME>_URL` documents the variable of every subgraph, and `<NAME>_PORT` rows come per subgraph. */
function covers(documented: Set<string>, name: string): boolean {
  if (documented.has(name)) return true;
  return /^SUBGRAPH_[A-Z]+_URL$/.test(name) && documented.has('SUBGRAPH_<NAME>_URL');
}

describe('the Configuration table in README.md', () => {
  const inCode = variablesInCode();
  const inReadme = variablesInReadme();

  it('lists every environment variable the code reads', () => {
    const missing = [...inCode.keys()].filter((name) => !covers(inReadme, name)).map((name) => `${name} (read in ${inCode.get(name)!.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('lists only variables the code reads', () => {
    const stale = [...inReadme].filter((name) => !name.includes('<') && !inCode.has(name));
    expect(stale).toEqual([]);
  });

  it('has one row per subgraph port', () => {
    for (const name of Object.keys(subgraphs)) expect(inReadme).toContain(`${name.toUpperCase()}_PORT`);
  });
});
