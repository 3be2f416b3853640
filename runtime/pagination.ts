import { badInput } from './errors.ts';
import { intInRange } from './validate.ts';

// Relay-style cursor pagination over keyset order (created_at DESC, id DESC), the same in every
// subgraph. Cursors are opaque to clients: base64url of [createdAt, id].

export interface Cursor {
  createdAt: string;
  id: string;
}

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  nodes: T[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number;
}

export const MAX_PAGE = 100;

export function encodeCursor(row: { createdAt: string; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt, row.id])).toString('base64url');
}

export function decodeCursor(cursor: string): Cursor {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') {
      return { createdAt: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through to the error below
  }
  throw badInput('after is not a cursor returned by this API', { argument: 'after' });
}

/** Validates the page arguments: limit is what the store fetches (one more than asked, to see if there is a next page). */
export function pageRequest(args: PageArgs): { first: number; limit: number; after: Cursor | null } {
  const first = intInRange(args.first ?? 20, 'first', 1, MAX_PAGE);
  return { first, limit: first + 1, after: args.after ? decodeCursor(args.after) : null };
}

/**
 * Builds the connection from up to first+1 rows fetched in keyset order. Cursors are encoded only
 * when asked for: a federated join of 50 agents' `tasks { nodes }` asks for none, and encoding
 * them all was 3 % of its CPU.
 */
export function toConnection<T extends { createdAt: string; id: string }>(
  rows: T[],
  page: { first: number; after: Cursor | null },
  totalCount: number,
): Connection<T> {
  const nodes = rows.slice(0, page.first);
  let edges: Connection<T>['edges'] | undefined;
  const edgesOf = () => (edges ??= nodes.map((node) => ({ cursor: encodeCursor(node), node })));
  return {
    get edges() {
      return edgesOf();
    },
    nodes,
    pageInfo: {
      hasNextPage: rows.length > page.first,
      hasPreviousPage: page.after !== null,
      get startCursor() {
        return edgesOf()[0]?.cursor ?? null;
      },
      get endCursor() {
        const all = edgesOf();
        return all[all.length - 1]?.cursor ?? null;
      },
    },
    totalCount,
  };
}
