// All SQL of the governance subgraph. Every statement is scoped to a tenant, except finding a
// presented key by its prefix: the key itself says which tenant it belongs to. Writes run in one
// transaction and publish their events after it commits.
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import type { EventBus } from '../../runtime/events.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction } from '../../runtime/unit-of-work.ts';
import {
  ApiKeyCreated,
  ApiKeyRevoked,
  displayPrefix,
  generateKey,
  keyMatches,
  lastUsedThreshold,
  LIMITS,
  prefixOf,
  subjectOfKey,
  type ApiKeyCreatedPayload,
  type ApiKeyDraft,
  type ApiKeyRevokedPayload,
} from './domain.ts';

export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  name: string;
  /** JSON string[]. */
  scopes: string;
  prefix: string;
  secret_hash: string;
  created_at: string;
  created_by: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface GovernanceDB {
  api_keys: ApiKeysTable;
}

/** An API key as resolvers see it; never carries the hash. */
export interface ApiKeyRow {
  id: string;
  tenantId: string;
  name: string;
  scopes: string[];
  /** As shown: ap_<prefix>. */
  prefix: string;
  createdAt: string;
  createdBy: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** Who a valid key acts as. */
export interface ApiKeyPrincipalRow {
  keyId: string;
  tenantId: string;
  subject: string;
  scopes: string[];
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

type Db = Kysely<GovernanceDB> | Transaction<GovernanceDB>;

export class ApiKeyStore {
  constructor(
    private readonly database: Database<GovernanceDB>,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  now(): Date {
    return new Date(this.clock());
  }

  async get(tenantId: string, id: string): Promise<ApiKeyRow | null> {
    return find(this.database.db, tenantId, id);
  }

  /** Newest first, keyset-paginated; revoked keys only with includeRevoked. */
  async list(tenantId: string, filter: { includeRevoked: boolean }, page: PageQuery): Promise<Connection<ApiKeyRow>> {
    const db = this.database.db;
    const base = () => {
      let q = db.selectFrom('api_keys').where('tenant_id', '=', tenantId);
      if (!filter.includeRevoked) q = q.where('revoked_at', 'is', null);
      return q;
    };
    let query = base().selectAll();
    const after = page.after;
    if (after) {
      query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await base()
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decode), page, Number(n));
  }

  /** The new key and, this once, its whole secret. */
  async create(tenantId: string, draft: ApiKeyDraft, createdBy: string | null): Promise<{ apiKey: ApiKeyRow; secret: string }> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const { active } = await trx
        .selectFrom('api_keys')
        .select((eb) => eb.fn.countAll<number>().as('active'))
        .where('tenant_id', '=', tenantId)
        .where('revoked_at', 'is', null)
        .executeTakeFirstOrThrow();
      if (Number(active) >= LIMITS.activeKeysPerTenant) {
        throw conflict(`The tenant already has ${LIMITS.activeKeysPerTenant} active API keys; revoke unused ones first`, { limit: LIMITS.activeKeysPerTenant });
      }
      const material = await freshKey(trx);
      const now = nowIso(this.clock);
      const inserted = await trx
        .insertInto('api_keys')
        .values({
          id: newId(),
          tenant_id: tenantId,
          name: draft.name,
          scopes: JSON.stringify(draft.scopes),
          prefix: material.prefix,
          secret_hash: material.hash,
          created_at: now,
          created_by: createdBy,
          last_used_at: null,
          revoked_at: null,
          revoked_by: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const apiKey = decode(inserted);
      emit({
        type: ApiKeyCreated,
        tenantId,
        subjectId: apiKey.id,
        occurredAt: now,
        payload: { keyId: apiKey.id, name: apiKey.name, scopes: apiKey.scopes, prefix: apiKey.prefix, createdBy } satisfies ApiKeyCreatedPayload,
      });
      return { apiKey, secret: material.key };
    });
  }

  /** Revokes for good; a key already revoked is returned as it is (a retried call changes nothing). */
  async revoke(tenantId: string, id: string, revokedBy: string | null): Promise<ApiKeyRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const updated = await trx
        .updateTable('api_keys')
        .set({ revoked_at: now, revoked_by: revokedBy })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (!updated) {
        const current = await find(trx, tenantId, id);
        if (!current) throw notFound('ApiKey', id);
        return current;
      }
      emit({ type: ApiKeyRevoked, tenantId, subjectId: id, occurredAt: now, payload: { keyId: id, revokedBy } satisfies ApiKeyRevokedPayload });
      return decode(updated);
    });
  }

  /**
   * Who a presented key acts as, or null when it is malformed, unknown, wrong or revoked (the
   * caller learns nothing about which). Records the use when the last record is over a minute old.
   */
  async verify(key: string): Promise<ApiKeyPrincipalRow | null> {
    const prefix = prefixOf(key);
    if (prefix === null) return null;
    const db = this.database.db;
    const row = await db.selectFrom('api_keys').selectAll().where('prefix', '=', prefix).executeTakeFirst();
    if (!row || !keyMatches(key, row.secret_hash) || row.revoked_at !== null) return null;
    const now = this.now();
    // One conditional statement: replicas verifying the same key at once record it once.
    await db
      .updateTable('api_keys')
      .set({ last_used_at: now.toISOString() })
      .where('id', '=', row.id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', lastUsedThreshold(now))]))
      .execute();
    return { keyId: row.id, tenantId: row.tenant_id, subject: subjectOfKey(row.id), scopes: decodeScopes(row.scopes) };
  }
}

/** A prefix no key has yet. 64 random bits make a clash rare; the unique index is the backstop. */
async function freshKey(trx: Transaction<GovernanceDB>) {
  for (;;) {
    const material = generateKey();
    const taken = await trx.selectFrom('api_keys').select(sql<number>`1`.as('one')).where('prefix', '=', material.prefix).executeTakeFirst();
    if (!taken) return material;
  }
}

async function find(db: Db, tenantId: string, id: string): Promise<ApiKeyRow | null> {
  const row = await db.selectFrom('api_keys').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
  return row ? decode(row) : null;
}

// Written by this store from validated scopes, so decoding trusts the shape.
function decodeScopes(text: string): string[] {
  return JSON.parse(text) as string[];
}

function decode(r: Selectable<ApiKeysTable>): ApiKeyRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    scopes: decodeScopes(r.scopes),
    prefix: displayPrefix(r.prefix),
    createdAt: r.created_at,
    createdBy: r.created_by,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}
