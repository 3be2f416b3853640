// All SQL of the agents subgraph. Every statement is scoped to a tenant; writes run in one
// transaction and publish their domain events only after it commits. The same code runs on
// SQLite and PostgreSQL.
import { sql, type Expression, type ExpressionBuilder, type Selectable, type SqlBool, type Transaction, type Kysely } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { Idempotency, replayById, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import type { IssuedCredential } from './credentials.ts';
import {
  AgentHeartbeat,
  AgentRegistered,
  AgentStatusChanged,
  AgentUpdated,
  assertCanHeartbeat,
  nextStatus,
  searchText,
  skillTagsOf,
  type AgentCapabilities,
  type AgentDraft,
  type AgentHeartbeatPayload,
  type AgentListFilter,
  type AgentPatch,
  type AgentProvider,
  type AgentRegisteredPayload,
  type AgentSkill,
  type AgentStatus,
  type AgentStatusChangedPayload,
  type AgentUpdatedPayload,
  type Label,
  type StatusAction,
} from './domain.ts';

export interface AgentsTable {
  id: string;
  tenant_id: string;
  name: string;
  description: string | null;
  agent_version: string;
  endpoint_url: string | null;
  /** JSON AgentProvider, or null. */
  provider: string | null;
  /** JSON AgentCapabilities. */
  capabilities: string;
  /** JSON AgentSkill[]. */
  skills: string;
  /** JSON Label[]; agent_labels holds the same pairs for filtering. */
  labels: string;
  /** JSON string[]. */
  default_input_modes: string;
  /** JSON string[]. */
  default_output_modes: string;
  /** The A2A card as given, JSON; null when registered without one. */
  card: string | null;
  status: AgentStatus;
  heartbeat_interval_seconds: number;
  last_heartbeat_at: string | null;
  search_text: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface AgentSkillTagsTable {
  tenant_id: string;
  agent_id: string;
  tag: string;
}

export interface AgentLabelsTable {
  tenant_id: string;
  agent_id: string;
  key: string;
  value: string;
}

export interface AgentsDB {
  agents: AgentsTable;
  agent_skill_tags: AgentSkillTagsTable;
  agent_labels: AgentLabelsTable;
}

/** An agent as resolvers see it: decoded JSON, camelCase, ISO timestamps. */
export interface AgentRow {
  id: string;
  tenantId: string;
  name: string;
  description: string | null;
  agentVersion: string;
  endpointUrl: string | null;
  provider: AgentProvider | null;
  capabilities: AgentCapabilities;
  skills: AgentSkill[];
  labels: Label[];
  defaultInputModes: string[];
  defaultOutputModes: string[];
  card: unknown;
  status: AgentStatus;
  heartbeatIntervalSeconds: number;
  lastHeartbeatAt: string | null;
  createdAt: string;
  updatedAt: string;
  version: number;
  /** Only on the row a registration with issueCredential answers with: never stored here. */
  credential?: IssuedCredential;
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

type Content = Omit<AgentDraft, 'card'>;
type Db = Kysely<AgentsDB> | Transaction<AgentsDB>;

/** What one mutation of an existing agent changes, decided from its current state. */
interface Change {
  set: Partial<AgentsTable>;
  /** Present when the skills (hence the tag index) are replaced. */
  tags?: string[];
  /** Present when the labels are replaced. */
  labels?: Label[];
  event(row: AgentRow): { type: string; payload: Record<string, unknown> };
}

export class AgentStore {
  constructor(
    private readonly database: Database<AgentsDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    /** Idempotency-Key handling of registrations (runtime/idempotency.ts). */
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  /** Whether a registration with this key already committed (see Idempotency.stored). */
  registered(request: IdempotentRequest | undefined): Promise<boolean> {
    return this.idempotency.stored(this.database.db, request, this.clock());
  }

  now(): Date {
    return new Date(this.clock());
  }

  async get(tenantId: string, id: string): Promise<AgentRow | null> {
    return find(this.database.db, tenantId, id);
  }

  /** Any number of agents in one statement (the dataloader's batch); unknown ids are left out. */
  async getMany(tenantId: string, ids: readonly string[]): Promise<AgentRow[]> {
    if (ids.length === 0) return [];
    const rows = await this.database.db
      .selectFrom('agents')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', 'in', [...ids])
      .execute();
    return rows.map(decode);
  }

  /** Newest first, keyset-paginated; totalCount counts every match, ignoring the cursor. */
  async list(tenantId: string, filter: AgentListFilter, page: PageQuery): Promise<Connection<AgentRow>> {
    const db = this.database.db;
    let query = db
      .selectFrom('agents')
      .selectAll()
      .where((eb) => matches(eb, tenantId, filter));
    const after = page.after;
    if (after) {
      query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await db
      .selectFrom('agents')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where((eb) => matches(eb, tenantId, filter))
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decode), page, Number(n));
  }

  /** `id` is given when something was bound to the agent before it was stored (its credential). */
  async register(tenantId: string, draft: AgentDraft, id: string = newId(), request?: IdempotentRequest): Promise<AgentRow> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx, emit) =>
        once(
          trx,
          this.clock(),
          () => this.insertAgent(trx, emit, tenantId, draft, id),
          replayById((agentId) => find(trx, tenantId, agentId)),
        ),
      ),
    );
  }

  private async insertAgent(trx: Transaction<AgentsDB>, emit: Emit, tenantId: string, draft: AgentDraft, id: string): Promise<AgentRow> {
    const now = nowIso(this.clock);
    const inserted = await trx
      .insertInto('agents')
      .values({
        id,
        tenant_id: tenantId,
        ...contentColumns(draft),
        card: draft.card === null || draft.card === undefined ? null : JSON.stringify(draft.card),
        status: 'REGISTERED',
        last_heartbeat_at: null,
        created_at: now,
        updated_at: now,
        version: 1,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await replaceTags(trx, tenantId, id, skillTagsOf(draft.skills));
    await replaceLabels(trx, tenantId, id, draft.labels);
    const row = decode(inserted);
    emitFor<AgentRegisteredPayload>(emit, AgentRegistered, row, {
      agentId: id,
      name: row.name,
      status: row.status,
      skillTags: skillTagsOf(row.skills),
    });
    return row;
  }

  async update(tenantId: string, id: string, patch: AgentPatch, expectedVersion?: number | null): Promise<AgentRow> {
    return this.mutate(tenantId, id, expectedVersion, (current) => {
      const next: Content = { ...current, ...patch };
      return {
        set: contentColumns(next),
        ...(patch.skills !== undefined ? { tags: skillTagsOf(next.skills) } : {}),
        ...(patch.labels !== undefined ? { labels: next.labels } : {}),
        event: (row) => ({
          type: AgentUpdated,
          payload: { agentId: row.id, version: row.version, fields: Object.keys(patch), skillTags: skillTagsOf(row.skills) } satisfies AgentUpdatedPayload,
        }),
      };
    });
  }

  async changeStatus(tenantId: string, id: string, action: StatusAction, expectedVersion?: number | null): Promise<AgentRow> {
    return this.mutate(tenantId, id, expectedVersion, (current) => {
      const to = nextStatus(current.status, action);
      return {
        set: { status: to },
        event: (row) => ({
          type: AgentStatusChanged,
          payload: { agentId: row.id, from: current.status, to } satisfies AgentStatusChangedPayload,
        }),
      };
    });
  }

  /** Sets lastHeartbeatAt to now. Liveness is not a change of the agent: version and updatedAt stay. */
  async recordHeartbeat(tenantId: string, id: string): Promise<AgentRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const at = nowIso(this.clock);
      const updated = await trx
        .updateTable('agents')
        .set({ last_heartbeat_at: at })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .where('status', '!=', 'RETIRED')
        .returningAll()
        .executeTakeFirst();
      if (!updated) {
        const current = await find(trx, tenantId, id);
        if (!current) throw notFound('Agent', id);
        assertCanHeartbeat(current.status);
        throw conflict(`Agent "${id}" changed while recording its heartbeat; retry`, { id });
      }
      const row = decode(updated);
      emitFor<AgentHeartbeatPayload>(emit, AgentHeartbeat, row, { agentId: id, at }, at);
      return row;
    });
  }

  /**
   * Read, check expectedVersion, apply, write guarded by the version read: a concurrent writer
   * that got in between makes the guarded UPDATE match nothing, which is a CONFLICT, not a lost update.
   */
  private async mutate(tenantId: string, id: string, expectedVersion: number | null | undefined, change: (current: AgentRow) => Change): Promise<AgentRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const current = await find(trx, tenantId, id);
      if (!current) throw notFound('Agent', id);
      if (expectedVersion !== null && expectedVersion !== undefined && expectedVersion !== current.version) {
        throw staleVersion(id, expectedVersion, current.version);
      }
      const c = change(current);
      const updated = await trx
        .updateTable('agents')
        .set({ ...c.set, updated_at: nowIso(this.clock), version: current.version + 1 })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .where('version', '=', current.version)
        .returningAll()
        .executeTakeFirst();
      if (!updated) {
        const actual = await find(trx, tenantId, id);
        if (!actual) throw notFound('Agent', id);
        throw staleVersion(id, expectedVersion ?? current.version, actual.version);
      }
      if (c.tags) await replaceTags(trx, tenantId, id, c.tags);
      if (c.labels) await replaceLabels(trx, tenantId, id, c.labels);
      const row = decode(updated);
      const { type, payload } = c.event(row);
      emitFor(emit, type, row, payload);
      return row;
    });
  }
}

function staleVersion(id: string, expectedVersion: number, actualVersion: number) {
  return conflict(`Agent "${id}" is at version ${actualVersion}, not the expected ${expectedVersion}: reload and retry`, {
    id,
    expectedVersion,
    actualVersion,
  });
}

function emitFor<P extends Record<string, unknown>>(emit: Emit, type: string, row: AgentRow, payload: P, occurredAt = row.updatedAt): void {
  emit({ type, tenantId: row.tenantId, subjectId: row.id, occurredAt, payload });
}

async function find(db: Db, tenantId: string, id: string): Promise<AgentRow | null> {
  const row = await db.selectFrom('agents').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
  return row ? decode(row) : null;
}

function matches(eb: ExpressionBuilder<AgentsDB, 'agents'>, tenantId: string, filter: AgentListFilter): Expression<SqlBool> {
  const conditions: Expression<SqlBool>[] = [eb('agents.tenant_id', '=', tenantId)];
  if (filter.status !== undefined) conditions.push(eb('agents.status', '=', filter.status));
  if (filter.skillTag !== undefined) {
    const tag = filter.skillTag;
    conditions.push(
      eb(
        'agents.id',
        'in',
        eb
          .selectFrom('agent_skill_tags')
          .select('agent_skill_tags.agent_id')
          .where('agent_skill_tags.tenant_id', '=', tenantId)
          .where('agent_skill_tags.tag', '=', tag),
      ),
    );
  }
  if (filter.label !== undefined) {
    const { key, value } = filter.label;
    let labelled = eb
      .selectFrom('agent_labels')
      .select('agent_labels.agent_id')
      .where('agent_labels.tenant_id', '=', tenantId)
      .where('agent_labels.key', '=', key);
    if (value !== undefined) labelled = labelled.where('agent_labels.value', '=', value);
    conditions.push(eb('agents.id', 'in', labelled));
  }
  if (filter.text !== undefined) {
    // Both sides are case-folded by the application (domain.searchText); wildcards in the
    // user's text are escaped so "50%" means the characters, not a pattern.
    const pattern = `%${filter.text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    conditions.push(sql<SqlBool>`${eb.ref('agents.search_text')} like ${pattern} escape '\\'`);
  }
  return eb.and(conditions);
}

async function replaceTags(trx: Transaction<AgentsDB>, tenantId: string, agentId: string, tags: string[]): Promise<void> {
  await trx.deleteFrom('agent_skill_tags').where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).execute();
  if (tags.length === 0) return;
  await trx
    .insertInto('agent_skill_tags')
    .values(tags.map((tag) => ({ tenant_id: tenantId, agent_id: agentId, tag })))
    .execute();
}

async function replaceLabels(trx: Transaction<AgentsDB>, tenantId: string, agentId: string, labels: Label[]): Promise<void> {
  await trx.deleteFrom('agent_labels').where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).execute();
  if (labels.length === 0) return;
  await trx
    .insertInto('agent_labels')
    .values(labels.map((l) => ({ tenant_id: tenantId, agent_id: agentId, key: l.key, value: l.value })))
    .execute();
}

function contentColumns(a: Content) {
  return {
    name: a.name,
    description: a.description,
    agent_version: a.agentVersion,
    endpoint_url: a.endpointUrl,
    provider: a.provider === null ? null : JSON.stringify(a.provider),
    capabilities: JSON.stringify(a.capabilities),
    skills: JSON.stringify(a.skills),
    labels: JSON.stringify(a.labels),
    default_input_modes: JSON.stringify(a.defaultInputModes),
    default_output_modes: JSON.stringify(a.defaultOutputModes),
    heartbeat_interval_seconds: a.heartbeatIntervalSeconds,
    search_text: searchText(a.name, a.description),
  } satisfies Partial<AgentsTable>;
}

// The store wrote these columns from validated values, so decoding trusts their shape.
function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

function decode(r: Selectable<AgentsTable>): AgentRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    description: r.description,
    agentVersion: r.agent_version,
    endpointUrl: r.endpoint_url,
    provider: r.provider === null ? null : json<AgentProvider>(r.provider),
    capabilities: json<AgentCapabilities>(r.capabilities),
    skills: json<AgentSkill[]>(r.skills),
    labels: json<Label[]>(r.labels),
    defaultInputModes: json<string[]>(r.default_input_modes),
    defaultOutputModes: json<string[]>(r.default_output_modes),
    card: r.card === null ? null : json<unknown>(r.card),
    status: r.status,
    heartbeatIntervalSeconds: Number(r.heartbeat_interval_seconds),
    lastHeartbeatAt: r.last_heartbeat_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}
