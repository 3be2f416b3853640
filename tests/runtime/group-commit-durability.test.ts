// Writes committed together are acknowledged only once durable: a process killed outright
// (SIGKILL, no shutdown) while grouped writes are in flight keeps every write it acknowledged.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('group commit durability (SQLite)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'group-durable-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps every acknowledged write of grouped commits across SIGKILL', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/runtime/support/group-commit-writer.ts', dataDir], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: string[] = [];
    const waves: { writes: number; commits: number }[] = [];
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      child.once('exit', () => reject(new Error(`writer exited early:\n${stderr}`)));
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const ack = /^ack (\S+)$/.exec(line);
          if (ack?.[1]) acked.push(ack[1]);
          const wave = /^wave \d+ writes (\d+) commits (\d+)$/.exec(line);
          if (wave) waves.push({ writes: Number(wave[1]), commits: Number(wave[2]) });
        }
        // The next wave's writes are already queued or running when the last answers arrive.
        if (acked.length >= 500) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    expect(await exited).toBe('SIGKILL');
    // The writes were grouped: fewer commits than writes.
    expect(waves.some((w) => w.commits < w.writes)).toBe(true);

    const db = new BetterSqlite3(join(dataDir, 'durable.sqlite'));
    try {
      const stored = new Set((db.prepare('select id from acked').all() as { id: string }[]).map((r) => r.id));
      expect(acked.filter((id) => !stored.has(id))).toEqual([]);
    } finally {
      db.close();
    }
  });
});
