import { describe, expect, it } from 'vitest';
import { GraphQLError } from 'graphql';
import { decodeCursor, encodeCursor, pageRequest, toConnection } from '../../runtime/pagination.ts';

describe('cursor pagination', () => {
  it('round-trips cursors', () => {
    const row = { createdAt: '2026-11-25T10:00:00.000Z', id: 'a' };
    expect(decodeCursor(encodeCursor(row))).toEqual(row);
  });

  it('rejects foreign cursors and out-of-range page sizes as BAD_USER_INPUT', () => {
    for (const bad of [() => decodeCursor('not-a-cursor'), () => pageRequest({ first: 0 }), () => pageRequest({ first: 101 })]) {
      let err: unknown;
      try {
        bad();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GraphQLError);
      expect((err as GraphQLError).extensions.code).toBe('BAD_USER_INPUT');
    }
  });

  it('builds pageInfo from first+1 rows', () => {
    const rows = [1, 2, 3].map((i) => ({ createdAt: `2026-11-25T10:00:0${i}.000Z`, id: String(i) }));
    const page = pageRequest({ first: 2 });
    expect(page.limit).toBe(3);
    const conn = toConnection(rows, page, 3);
    expect(conn.nodes.map((n) => n.id)).toEqual(['1', '2']);
    expect(conn.pageInfo.hasNextPage).toBe(true);
    expect(conn.pageInfo.endCursor).toBe(encodeCursor(rows[1]!));
    const last = toConnection(rows.slice(2), { first: 2, after: decodeCursor(conn.pageInfo.endCursor!) }, 3);
    expect(last.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
  });
});
