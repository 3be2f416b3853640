import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';
import { toGatewaySupergraph } from '../../gateway/auth/supergraph-policy.ts';
import { readSupergraph, SupergraphFileError, validateSupergraph, watchedSupergraph } from '../../gateway/supergraph.ts';

const composed = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8');
const ORIGINAL_DESCRIPTION = '"""One agent, or null when there is none with this id."""';

function withDescription(text: string): string {
  expect(composed).toContain(ORIGINAL_DESCRIPTION);
  return composed.replace(ORIGINAL_DESCRIPTION, `"""${text}"""`);
}

/** Parses, but routes a field to a subgraph the supergraph does not declare. */
const unknownGraph = composed.replace('activeTaskCount: Int! @join__field(graph: ORCHESTRATION)', 'activeTaskCount: Int! @join__field(graph: NOWHERE)');

function captureLogger() {
  const lines: { level: number; msg: string; reason?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { logger, lines };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('validateSupergraph', () => {
  it('accepts the composed supergraph', async () => {
    await expect(validateSupergraph(composed)).resolves.toBeUndefined();
  });

  it('rejects an empty file, a truncated file, a plain schema and a broken join', async () => {
    await expect(validateSupergraph('  \n')).rejects.toThrow(/empty/);
    // Cut inside a definition: a cut at an arbitrary length may land between two definitions and parse.
    const cut = composed.indexOf('{', composed.indexOf('type Query')) + 1;
    await expect(validateSupergraph(composed.slice(0, cut))).rejects.toThrow(/Syntax Error/);
    await expect(validateSupergraph('type Query { hello: String }')).rejects.toThrow();
    expect(unknownGraph).not.toBe(composed);
    await expect(validateSupergraph(unknownGraph)).rejects.toThrow(/NOWHERE/);
  });
});

describe('readSupergraph', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'supergraph-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('says how to create a missing file', async () => {
    const missing = join(dir, 'nope.graphql');
    const error = await readSupergraph(missing).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SupergraphFileError);
    expect((error as Error).message).toContain(`Supergraph file not found: ${missing}`);
    expect((error as Error).message).toContain('npm run compose');
  });

  it('refuses to start from an invalid file', async () => {
    const path = join(dir, 'supergraph.graphql');
    writeFileSync(path, 'type Query { hello: String }');
    await expect(readSupergraph(path)).rejects.toThrow(SupergraphFileError);
    writeFileSync(path, composed);
    await expect(readSupergraph(path)).resolves.toBe(composed);
  });
});

describe('watchedSupergraph', () => {
  let dir: string;
  let path: string;
  let cleanup: (() => Promise<void>) | undefined;
  let updates: string[];
  const noop = async () => {};

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'supergraph-'));
    path = join(dir, 'supergraph.graphql');
    writeFileSync(path, composed);
    updates = [];
  });
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(options: { watch?: boolean; pollMs?: number } = {}) {
    const { logger, lines } = captureLogger();
    const hook = watchedSupergraph({ path, initialSdl: composed, watch: options.watch ?? true, pollMs: options.pollMs ?? 200, debounceMs: 100, logger });
    const result = await hook({
      update: (sdl) => void updates.push(sdl),
      healthCheck: noop,
      getDataSource: () => {
        throw new Error('unused');
      },
    });
    cleanup = result.cleanup;
    // What the gateway is handed is the file in the form it loads (see toGatewaySupergraph).
    expect(result.supergraphSdl).toBe(toGatewaySupergraph(composed));
    return lines;
  }

  it('hands a changed file to the gateway once, after the writes settle', async () => {
    await start();
    const versions = [1, 2, 3, 4, 5].map((n) => withDescription(`Version ${n}.`));
    for (const v of versions) {
      writeFileSync(path, v);
      await sleep(10);
    }
    await until(() => updates.length > 0);
    await sleep(400);
    expect(updates).toEqual([toGatewaySupergraph(versions[4]!)]);
  });

  it('picks up a file replaced by a rename (how editors and deploy tools write)', async () => {
    await start();
    const next = withDescription('Replaced atomically.');
    writeFileSync(join(dir, 'incoming.tmp'), next);
    renameSync(join(dir, 'incoming.tmp'), path);
    await until(() => updates.length > 0);
    expect(updates).toEqual([toGatewaySupergraph(next)]);
  });

  it('logs an invalid file, keeps the current schema, and takes the next valid one', async () => {
    const lines = await start();
    writeFileSync(path, unknownGraph);
    await until(() => lines.some((l) => l.msg.includes('rejected')));
    expect(updates).toEqual([]);
    const rejected = lines.find((l) => l.msg.includes('rejected'));
    expect(rejected).toMatchObject({ level: 50, msg: 'supergraph file rejected; still serving the current schema' });
    expect(rejected?.reason).toMatch(/NOWHERE/);

    const fixed = withDescription('Fixed.');
    writeFileSync(path, fixed);
    await until(() => updates.length > 0);
    expect(updates).toEqual([toGatewaySupergraph(fixed)]);
    expect(lines.some((l) => l.msg === 'supergraph reloaded')).toBe(true);
  });

  it('ignores a rewrite with identical content', async () => {
    await start();
    writeFileSync(path, composed);
    await sleep(600);
    expect(updates).toEqual([]);
  });

  it('stops watching on cleanup, and does not watch at all when told not to', async () => {
    await start();
    await cleanup?.();
    cleanup = undefined;
    writeFileSync(path, withDescription('After cleanup.'));
    await sleep(600);
    expect(updates).toEqual([]);

    await start({ watch: false });
    writeFileSync(path, withDescription('Unwatched.'));
    await sleep(600);
    expect(updates).toEqual([]);
  });
});
