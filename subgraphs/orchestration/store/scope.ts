// What every write helper works in: one transaction of one tenant, at one instant.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from '../../../runtime/db.ts';
import type { Cursor } from '../../../runtime/pagination.ts';
import type { Emit } from '../../../runtime/unit-of-work.ts';
import type { Actor } from '../domain.ts';
import type { OrchestrationDB } from './tables.ts';

export interface Scope {
  trx: Transaction<OrchestrationDB>;
  dialect: Dialect;
  tenantId: string;
  /** The instant of the whole transaction (epoch ms): every row it writes agrees on it. */
  now: number;
  emit: Emit;
  /** Who the transaction's changes are recorded as in the tasks' history. */
  actor: Actor;
}

export type Reader = Kysely<OrchestrationDB>;

/** Rows after the cursor in the shared keyset order (created_at DESC, id DESC). */
export function afterCursor(cursor: Cursor) {
  return sql<boolean>`(created_at < ${cursor.createdAt} or (created_at = ${cursor.createdAt} and id < ${cursor.id}))`;
}

export function affected(result: { numUpdatedRows: bigint }): number {
  return Number(result.numUpdatedRows);
}
