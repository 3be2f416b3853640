// All SQL of the governance subgraph. Every statement is scoped to a tenant, except finding a
// presented key by its prefix: the key itself says which tenant it belongs to. Writes run in one
// transaction and publish their events after it commits.
import { sql, type ExpressionBuilder, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, domainError, notFound } from '../../runtime/errors.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { Idempotency, type IdempotentRequest, type ReplayCodec } from '../../runtime/idempotency.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  activeAt,
  AGENT_CREDENTIAL_SCOPES,
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
  /** The instant the key is refused from: past once revoked, future during a rotation's overlap. */
  revoked_at: string | null;
  revoked_by: string | null;
  /** Set on an agent credential: the agent the key acts as. */
  agent_id: string | null;
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
  agentId: string | null;
}

/** Who a valid key acts as. */
export interface ApiKeyPrincipalRow {
  keyId: string;
  tenantId: string;
  subject: string;
  scopes: string[];
  /** Set for an agent credential: the agent the caller acts as. */
  agentId: string | null;
}

/** A new key and, this once, its whole secret. */
export interface CreatedKey {
  apiKey: ApiKeyRow;
  secret: string;
}

export interface ApiKeyFilter {
  includeRevoked: boolean;
  /** Only the credentials of this agent. */
  agentId?: string | null;
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

type Db = Kysely<GovernanceDB> | Transaction<GovernanceDB>;

/** Not revoked at `now` (revoked_at null, or a future instant: a rotation's overlap). */
function usableAt(eb: ExpressionBuilder<GovernanceDB, 'api_keys'>, now: string) {
  return eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', now)]);
}

/**
 * A repeated keyed createApiKey creates no second key, but cannot answer the first one: its secret
 * was shown once and only its hash is stored (the idempotency record keeps the key's id, never the
 * secret). The repeat names the key, so the client can revoke it and create another.
 */
const SECRET_SHOWN_ONCE: ReplayCodec<CreatedKey> = {
  save: (created) => created.apiKey.id,
  async load(saved) {
    throw domainError(
      'CONFLICT',
      'this Idempotency-Key already created an API key, whose secret was shown only in the first answer and is not stored; revoke that key (apiKeyId) and create another with a new Idempotency-Key',
      { apiKeyId: String(saved), reason: 'SECRET_SHOWN_ONCE' },
    );
  },
};

export class ApiKeyStore {
  constructor(
    private readonly database: Database<GovernanceDB>,
    /** The outbox (or, in tests, a bus): events are written with the change and published after commit. */
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    /** Idempotency-Key handling of createApiKey (runtime/idempotency.ts). */
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  now(): Date {
    return new Date(this.clock());
  }

  async get(tenantId: string, id: string): Promise<ApiKeyRow | null> {
    return find(this.database.db, tenantId, id);
  }

  /** Newest first, keyset-paginated; revoked keys only with includeRevoked; one agent's with agentId. */
  async list(tenantId: string, filter: ApiKeyFilter, page: PageQuery): Promise<Connection<ApiKeyRow>> {
    const db = this.database.db;
    const now = nowIso(this.clock);
    const base = () => {
      let q = db.selectFrom('api_keys').where('tenant_id', '=', tenantId);
      if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
      if (!filter.includeRevoked) q = q.where((eb) => usableAt(eb, now));
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

  /** A partner key (bound to no agent): the new key and, this once, its whole secret. */
  async create(tenantId: string, draft: ApiKeyDraft, createdBy: string | null, request?: IdempotentRequest): Promise<CreatedKey> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
        once(trx, this.clock(), () => this.insertPartnerKey(trx, emit, tenantId, draft, createdBy), SECRET_SHOWN_ONCE),
      ),
    );
  }

  private async insertPartnerKey(
    trx: Transaction<GovernanceDB>,
    emit: Emit,
    tenantId: string,
    draft: ApiKeyDraft,
    createdBy: string | null,
  ): Promise<CreatedKey> {
    const now = nowIso(this.clock);
    const { active } = await trx
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('active'))
      .where('tenant_id', '=', tenantId)
      .where('agent_id', 'is', null)
      .where((eb) => usableAt(eb, now))
      .executeTakeFirstOrThrow();
    if (Number(active) >= LIMITS.activeKeysPerTenant) {
      throw conflict(`The tenant already has ${LIMITS.activeKeysPerTenant} active API keys; revoke unused ones first`, { limit: LIMITS.activeKeysPerTenant });
    }
    return insertKey(trx, emit, { tenantId, name: draft.name, scopes: draft.scopes, agentId: null, createdBy, now });
  }

  /**
   * A credential acting as `agentId` (AGENT_CREDENTIAL_SCOPES), beside any it already has. The
   * agents subgraph mints one for an agent it has just registered, so the agent is not checked here.
   */
  async issueAgentCredential(tenantId: string, agentId: string, name: string, createdBy: string | null): Promise<CreatedKey> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      await assertRoomForAgent(trx, tenantId, agentId, now);
      return insertKey(trx, emit, { tenantId, name, scopes: AGENT_CREDENTIAL_SCOPES, agentId, createdBy, now });
    });
  }

  /**
   * A new credential for an agent that has had one; its other credentials stop working at once, or
   * after `overlapSeconds` (never later than any revocation they already have), so a running agent
   * can switch keys without a gap. NOT_FOUND when the agent never had a credential here: this store
   * cannot tell an agent without credentials from an id no agent has.
   */
  async rotateAgentCredential(tenantId: string, agentId: string, overlapSeconds: number, rotatedBy: string | null): Promise<CreatedKey> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const newest = await trx
        .selectFrom('api_keys')
        .select(['name'])
        .where('tenant_id', '=', tenantId)
        .where('agent_id', '=', agentId)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .executeTakeFirst();
      if (!newest) {
        throw domainError('NOT_FOUND', `Agent "${agentId}" has no credential to rotate; register it with issueCredential to get one`, {
          entity: 'AgentCredential',
          agentId,
        });
      }
      const until = new Date(this.clock() + overlapSeconds * 1000).toISOString();
      const ending = await trx
        .updateTable('api_keys')
        .set({ revoked_at: until, revoked_by: rotatedBy })
        .where('tenant_id', '=', tenantId)
        .where('agent_id', '=', agentId)
        .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', until)]))
        .returning(['id'])
        .execute();
      for (const { id } of ending) {
        emit({
          type: ApiKeyRevoked,
          tenantId,
          subjectId: id,
          occurredAt: now,
          payload: { keyId: id, revokedBy: rotatedBy, revokedAt: until } satisfies ApiKeyRevokedPayload,
        });
      }
      await assertRoomForAgent(trx, tenantId, agentId, now);
      return insertKey(trx, emit, { tenantId, name: newest.name, scopes: AGENT_CREDENTIAL_SCOPES, agentId, createdBy: rotatedBy, now });
    });
  }

  /**
   * Revokes for good, now (also a key whose rotation overlap is still running); a key already
   * revoked is returned as it is (a retried call changes nothing).
   */
  async revoke(tenantId: string, id: string, revokedBy: string | null): Promise<ApiKeyRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = nowIso(this.clock);
      const updated = await trx
        .updateTable('api_keys')
        .set({ revoked_at: now, revoked_by: revokedBy })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .where((eb) => usableAt(eb, now))
        .returningAll()
        .executeTakeFirst();
      if (!updated) {
        const current = await find(trx, tenantId, id);
        if (!current) throw notFound('ApiKey', id);
        return current;
      }
      emit({ type: ApiKeyRevoked, tenantId, subjectId: id, occurredAt: now, payload: { keyId: id, revokedBy, revokedAt: now } satisfies ApiKeyRevokedPayload });
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
    const now = this.now();
    const nowText = now.toISOString();
    if (!row || !keyMatches(key, row.secret_hash) || !activeAt(row.revoked_at, nowText)) return null;
    // One conditional statement: replicas verifying the same key at once record it once.
    await db
      .updateTable('api_keys')
      .set({ last_used_at: nowText })
      .where('id', '=', row.id)
      .where((eb) => usableAt(eb, nowText))
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', lastUsedThreshold(now))]))
      .execute();
    return { keyId: row.id, tenantId: row.tenant_id, subject: subjectOfKey(row.id), scopes: decodeScopes(row.scopes), agentId: row.agent_id };
  }
}

interface NewKey {
  tenantId: string;
  name: string;
  scopes: string[];
  agentId: string | null;
  createdBy: string | null;
  now: string;
}

async function insertKey(trx: Transaction<GovernanceDB>, emit: Emit, k: NewKey): Promise<CreatedKey> {
  const material = await freshKey(trx);
  const inserted = await trx
    .insertInto('api_keys')
    .values({
      id: newId(),
      tenant_id: k.tenantId,
      name: k.name,
      scopes: JSON.stringify(k.scopes),
      prefix: material.prefix,
      secret_hash: material.hash,
      created_at: k.now,
      created_by: k.createdBy,
      last_used_at: null,
      revoked_at: null,
      revoked_by: null,
      agent_id: k.agentId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const apiKey = decode(inserted);
  emit({
    type: ApiKeyCreated,
    tenantId: k.tenantId,
    subjectId: apiKey.id,
    occurredAt: k.now,
    payload: {
      keyId: apiKey.id,
      name: apiKey.name,
      scopes: apiKey.scopes,
      prefix: apiKey.prefix,
      createdBy: k.createdBy,
      agentId: k.agentId,
    } satisfies ApiKeyCreatedPayload,
  });
  return { apiKey, secret: material.key };
}

async function assertRoomForAgent(trx: Transaction<GovernanceDB>, tenantId: string, agentId: string, now: string): Promise<void> {
  const { active } = await trx
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<number>().as('active'))
    .where('tenant_id', '=', tenantId)
    .where('agent_id', '=', agentId)
    .where((eb) => usableAt(eb, now))
    .executeTakeFirstOrThrow();
  if (Number(active) >= LIMITS.activeCredentialsPerAgent) {
    throw conflict(`Agent "${agentId}" already has ${LIMITS.activeCredentialsPerAgent} active credentials; revoke some, or rotate without overlap`, {
      limit: LIMITS.activeCredentialsPerAgent,
      agentId,
    });
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
    agentId: r.agent_id,
  };
}
