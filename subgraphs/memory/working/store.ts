// Where working memory lives: the subgraph's database by default, Redis when REDIS_URL is set (so
// replicas share it and entries expire by themselves). Both give the same answers: a write names
// the version it expects or none; an expired entry is absent, and the next write makes version 1.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../../runtime/db.ts';
import { nowIso } from '../../../runtime/db.ts';
import { type ExpectedVersion, incremented, versionConflict, type WorkingMemoryEntryRow } from './domain.ts';

export interface WorkingMemoryTable {
  tenant_id: string;
  namespace: string;
  key: string;
  value: string;
  version: number;
  expires_at: string | null;
  updated_at: string;
}

export interface WorkingMemoryDB {
  working_memory: WorkingMemoryTable;
}

export interface WorkingMemoryStore {
  get(tenantId: string, namespace: string, key: string): Promise<WorkingMemoryEntryRow | null>;
  /** Writes the value; CONFLICT when `expected` is given and differs from the entry's version (0: absent). */
  set(tenantId: string, namespace: string, key: string, valueJson: string, expiresAt: string | null, expected: ExpectedVersion): Promise<WorkingMemoryEntryRow>;
  /** Adds `by` to an integer value (absent: 0); the expiry stays unless a new one is given. */
  increment(tenantId: string, namespace: string, key: string, by: number, expiresAt: string | null): Promise<WorkingMemoryEntryRow>;
  /** False when there was nothing to delete; CONFLICT when `expected` differs. */
  delete(tenantId: string, namespace: string, key: string, expected: ExpectedVersion): Promise<boolean>;
  /** Frees expired entries (Redis expires them itself). */
  sweepExpired(): Promise<number>;
  close(): Promise<void>;
}

/** Optimistic retries of an increment that lost a race to another writer of the same key. */
const INCREMENT_ATTEMPTS = 50;

export class SqlWorkingMemory implements WorkingMemoryStore {
  constructor(
    private readonly database: Database<WorkingMemoryDB>,
    private readonly clock: () => number = Date.now,
  ) {}

  private get db(): Kysely<WorkingMemoryDB> {
    return this.database.db;
  }

  async get(tenantId: string, namespace: string, key: string): Promise<WorkingMemoryEntryRow | null> {
    const now = nowIso(this.clock);
    const row = await this.db
      .selectFrom('working_memory')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('namespace', '=', namespace)
      .where('key', '=', key)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst();
    return row ? decode(row) : null;
  }

  async set(
    tenantId: string,
    namespace: string,
    key: string,
    valueJson: string,
    expiresAt: string | null,
    expected: ExpectedVersion,
  ): Promise<WorkingMemoryEntryRow> {
    const now = nowIso(this.clock);
    const expired = sql<boolean>`(working_memory.expires_at is not null and working_memory.expires_at <= ${now})`;
    const where = { tenant_id: tenantId, namespace, key };
    let row: WorkingMemoryTable | undefined;
    if (expected !== null && expected > 0) {
      // Only an entry at that version may change: an update, never an insert.
      row = await this.db
        .updateTable('working_memory')
        .set({ value: valueJson, version: expected + 1, expires_at: expiresAt, updated_at: now })
        .where('tenant_id', '=', where.tenant_id)
        .where('namespace', '=', namespace)
        .where('key', '=', key)
        .where('version', '=', expected)
        .where(sql<boolean>`not ${expired}`)
        .returningAll()
        .executeTakeFirst();
    } else {
      // One statement on both databases: insert, or update in place (always, or when expected is
      // 0 only over an expired entry, which counts as absent).
      row = await this.db
        .insertInto('working_memory')
        .values({ ...where, value: valueJson, version: 1, expires_at: expiresAt, updated_at: now })
        .onConflict((oc) => {
          const update = oc.columns(['tenant_id', 'namespace', 'key']).doUpdateSet({
            value: valueJson,
            version: sql<number>`case when ${expired} then 1 else working_memory.version + 1 end`,
            expires_at: expiresAt,
            updated_at: now,
          });
          return expected === 0 ? update.where(expired) : update;
        })
        .returningAll()
        .executeTakeFirst();
    }
    if (row) return decode(row);
    const current = await this.get(tenantId, namespace, key);
    throw versionConflict(namespace, key, expected ?? 0, current?.version ?? 0);
  }

  async increment(tenantId: string, namespace: string, key: string, by: number, expiresAt: string | null): Promise<WorkingMemoryEntryRow> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(tenantId, namespace, key);
      const next = incremented(namespace, key, current?.valueJson ?? null, by);
      try {
        return await this.set(tenantId, namespace, key, next, expiresAt ?? current?.expiresAt ?? null, current?.version ?? 0);
      } catch (err) {
        if (attempt >= INCREMENT_ATTEMPTS || (err as { extensions?: { code?: unknown } }).extensions?.code !== 'CONFLICT') throw err;
      }
    }
  }

  async delete(tenantId: string, namespace: string, key: string, expected: ExpectedVersion): Promise<boolean> {
    const now = nowIso(this.clock);
    const deleted = await this.db
      .deleteFrom('working_memory')
      .where('tenant_id', '=', tenantId)
      .where('namespace', '=', namespace)
      .where('key', '=', key)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .$if(expected !== null, (q) => q.where('version', '=', expected as number))
      .executeTakeFirst();
    if (Number(deleted.numDeletedRows) > 0) return true;
    if (expected === null) return false;
    const current = await this.get(tenantId, namespace, key);
    if (expected === 0 && !current) return false;
    throw versionConflict(namespace, key, expected, current?.version ?? 0);
  }

  async sweepExpired(): Promise<number> {
    const result = await this.db.deleteFrom('working_memory').where('expires_at', '<=', nowIso(this.clock)).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async close(): Promise<void> {}
}

function decode(r: WorkingMemoryTable): WorkingMemoryEntryRow {
  return {
    namespace: r.namespace,
    key: r.key,
    valueJson: r.value,
    version: Number(r.version),
    expiresAt: r.expires_at,
    updatedAt: r.updated_at,
  };
}
