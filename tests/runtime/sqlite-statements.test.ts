// The SQLite connection as kysely sees it (runtime/sqlite-statements.ts): statements compiled once
// per SQL text, rows built from arrays, and the same rows better-sqlite3 would have given.
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withStatementCache } from '../../runtime/sqlite-statements.ts';

let conn: BetterSqlite3.Database;
afterEach(() => conn?.close());

function open() {
  conn = new BetterSqlite3(':memory:');
  conn.exec(`create table t (id integer primary key, name text, score real, data blob, note text);
             insert into t values (1, 'one', 1.5, x'0102', null), (2, 'two', 2.5, null, 'n');`);
  const prepare = vi.spyOn(conn, 'prepare');
  return { database: withStatementCache(conn, 3), prepare };
}

describe('SQLite statement cache', () => {
  it('compiles a statement once per SQL text and reuses it', () => {
    const { database, prepare } = open();
    const sql = 'select id from t where id = ?';
    expect(database.prepare(sql).all([1])).toEqual([{ id: 1 }]);
    expect(database.prepare(sql).all([2])).toEqual([{ id: 2 }]);
    expect(prepare).toHaveBeenCalledTimes(1);
  });

  it('gives the rows better-sqlite3 gives, duplicate column names included', () => {
    const { database } = open();
    for (const sql of ['select * from t order by id', 'select id, name as id, note from t order by id', 'select count(*) as n, max(score) from t']) {
      expect(database.prepare(sql).all([])).toEqual(conn.prepare(sql).all());
    }
    const returning = database.prepare("update t set note = 'x' where id = 2 returning *");
    expect(returning.reader).toBe(true);
    expect(returning.all([])).toEqual([{ id: 2, name: 'two', score: 2.5, data: null, note: 'x' }]);
  });

  it('runs writes and reports what they changed', () => {
    const { database } = open();
    const statement = database.prepare('insert into t (name) values (?)');
    expect(statement.reader).toBe(false);
    expect(statement.run(['three'])).toMatchObject({ changes: 1, lastInsertRowid: 3 });
    expect(statement.run(['four'])).toMatchObject({ changes: 1, lastInsertRowid: 4 });
  });

  it('hands out another statement while the cached one is still iterating', () => {
    const { database } = open();
    const sql = 'select id from t order by id';
    const outer = database.prepare(sql).iterate([]);
    const seen: unknown[] = [];
    for (const row of outer) seen.push(row, database.prepare(sql).all([]).length);
    expect(seen).toEqual([{ id: 1 }, 2, { id: 2 }, 2]);
  });

  it('keeps the most recently used statements within its size', () => {
    const { database, prepare } = open();
    const q = (n: number) => `select ${n} as n`;
    for (const n of [1, 2, 3, 1, 4]) database.prepare(q(n)).all([]);
    expect(prepare).toHaveBeenCalledTimes(4);
    // 2 was the least recently used when 4 came in: compiled again; 1 was kept.
    database.prepare(q(1)).all([]);
    expect(prepare).toHaveBeenCalledTimes(4);
    database.prepare(q(2)).all([]);
    expect(prepare).toHaveBeenCalledTimes(5);
  });

  it('follows a schema change under a cached statement, and forgets everything on clear()', () => {
    const { database, prepare } = open();
    const sql = 'select * from t where id = 1';
    expect(Object.keys(database.prepare(sql).all([])[0] as object)).toEqual(['id', 'name', 'score', 'data', 'note']);
    conn.exec('alter table t add column extra text');
    expect(database.prepare(sql).all([])).toEqual([{ id: 1, name: 'one', score: 1.5, data: Buffer.from([1, 2]), note: null, extra: null }]);
    database.clear();
    database.prepare(sql).all([]);
    expect(prepare).toHaveBeenCalledTimes(2);
  });
});
