// All SQL of the discovery subgraph. Writes of discovery's own data (listings, services, peers)
// run in one transaction with their outbox events.
//
// Why a read model of agents (agent_profiles): the agents subgraph owns agents, and discovery
// never lets its clients write those fields. But ranking 10,000 agents in under 50 ms cannot ask
// the agents subgraph for each of them, so discovery keeps a copy, fed by the agents subgraph's
// events (AgentRegistered/Updated/StatusChanged: the agent is read again from the agents subgraph;
// AgentHeartbeat: the time is taken from the event) and refreshed whenever discovery settings of
// an agent are written or the refresh job finds a copy older than DISCOVERY_PROFILE_REFRESH_SECONDS.
// Likewise agent_tasks holds what orchestration's TaskStateChanged events said (load, successes).
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { Idempotency, replayById, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  ACTIVE_TASK_STATES,
  backoffSeconds,
  DEFAULT_SETTINGS,
  ServiceStatusChanged,
  type AgentProfile,
  type AgentSkill,
  type HealthCheckMode,
  type ListingSettings,
  type PeerDraft,
  type PeerKind,
  type PeerState,
  type ServiceDraft,
  type ServiceKind,
  type ServiceStatus,
  type ServiceStatusPayload,
  type TrustLevel,
} from './domain.ts';
import { buildIndex, indexEntry, localEntry, type LiveState, type MatchIndex } from './matching.ts';

interface AgentProfilesTable {
  tenant_id: string;
  agent_id: string;
  profile: string;
  status: string;
  last_heartbeat_at: string | null;
  synced_at: string;
  revision: number;
  changed_at: string;
  beat_recorded_at: string;
}

interface AgentListingsTable {
  tenant_id: string;
  agent_id: string;
  public: number;
  settings: string;
  created_at: string;
  updated_at: string;
  version: number;
}

interface AgentTasksTable {
  tenant_id: string;
  task_id: string;
  agent_id: string | null;
  state: string;
  updated_at: string;
  recorded_at: string;
}

interface ServicesTable {
  id: string;
  tenant_id: string;
  name: string;
  kind: ServiceKind;
  endpoint: string;
  metadata: string;
  owner: string | null;
  mode: HealthCheckMode;
  ttl_seconds: number | null;
  probe_url: string | null;
  probe_interval_seconds: number | null;
  probe_timeout_ms: number | null;
  status: ServiceStatus;
  status_reason: string | null;
  last_heartbeat_at: string | null;
  last_checked_at: string | null;
  status_changed_at: string | null;
  next_check_at: string;
  created_at: string;
  updated_at: string;
  version: number;
}

interface PeersTable {
  id: string;
  tenant_id: string;
  name: string;
  kind: PeerKind;
  url: string;
  trust: TrustLevel;
  jwks: string | null;
  sync_interval_seconds: number;
  state: PeerState;
  last_error: string | null;
  consecutive_failures: number;
  last_sync_at: string | null;
  last_success_at: string | null;
  next_sync_at: string;
  agent_count: number;
  created_at: string;
  updated_at: string;
}

interface RemoteAgentsTable {
  tenant_id: string;
  peer_id: string;
  remote_id: string;
  name: string;
  description: string | null;
  skills: string;
  card: string;
  source_url: string;
  fetched_at: string;
  signature_verified: number;
  signature_error: string | null;
}

export interface DiscoveryDB {
  agent_profiles: AgentProfilesTable;
  agent_listings: AgentListingsTable;
  agent_tasks: AgentTasksTable;
  services: ServicesTable;
  peers: PeersTable;
  remote_agents: RemoteAgentsTable;
}

/** An entity of another subgraph joined by its id (Agent). */
export interface EntityRef {
  id: string;
}

/** An agent's discovery settings with the profile they describe (null before it was read). */
export interface ListingRow extends ListingSettings {
  tenantId: string;
  agentId: string;
  profile: AgentProfile | null;
  createdAt: string;
  updatedAt: string;
  /** 0 while no settings were written (the defaults). */
  version: number;
}

export interface ServiceRow {
  id: string;
  tenantId: string;
  name: string;
  kind: ServiceKind;
  endpoint: string;
  metadata: unknown;
  owner: string | null;
  mode: HealthCheckMode;
  ttlSeconds: number | null;
  probeUrl: string | null;
  probeIntervalSeconds: number | null;
  probeTimeoutMs: number | null;
  status: ServiceStatus;
  statusReason: string | null;
  lastHeartbeatAt: string | null;
  lastCheckedAt: string | null;
  statusChangedAt: string | null;
  nextCheckAt: string;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface ServiceEventRow {
  serviceId: string;
  from: ServiceStatus;
  to: ServiceStatus;
  reason: string | null;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

export interface PeerRow {
  id: string;
  tenantId: string;
  name: string;
  kind: PeerKind;
  url: string;
  trust: TrustLevel;
  jwks: unknown;
  syncIntervalSeconds: number;
  state: PeerState;
  lastError: string | null;
  consecutiveFailures: number;
  lastSyncAt: string | null;
  lastSuccessAt: string | null;
  nextSyncAt: string;
  agentCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface RemoteAgentRow {
  id: string;
  tenantId: string;
  peerId: string;
  name: string;
  description: string | null;
  skills: AgentSkill[];
  card: unknown;
  sourceUrl: string;
  fetchedAt: string;
  signatureVerified: boolean;
  signatureError: string | null;
  trust: TrustLevel;
}

/** A remote agent as a pull found it. */
export interface PulledAgent {
  remoteId: string;
  name: string;
  description: string | null;
  skills: AgentSkill[];
  card: unknown;
  sourceUrl: string;
  signatureVerified: boolean;
  signatureError: string | null;
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

/** One listed agent: its profile and settings. */
export interface CatalogEntry {
  profile: AgentProfile;
  settings: ListingSettings;
}

type Db = Kysely<DiscoveryDB> | Transaction<DiscoveryDB>;

interface MatchState {
  /** What the index was built from: the count and newest change of the local profiles, and of the remote catalog. */
  stamp: { local: string; remote: string };
  index: MatchIndex;
  live: Map<string, LiveState>;
  checkedAt: number;
  refreshing?: Promise<void> | undefined;
  /** Set by a write through this store: the next match waits for a fresh state. */
  stale?: boolean;
}

export class DiscoveryStore {
  private readonly matching = new Map<string, MatchState>();

  constructor(
    private readonly database: Database<DiscoveryDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
    /** How long a tenant's match state (index, liveness, load) is used before it is checked again (0: every match). */
    private readonly liveCacheMs = 1000,
  ) {}

  now(): number {
    return this.clock();
  }

  // --- Agent profiles (the read model) --------------------------------------------------------

  /** Writes the agent as the agents subgraph described it; the revision moves only when it changed. */
  async upsertProfile(p: AgentProfile): Promise<void> {
    const db = this.database.db;
    const encoded = encodeProfile(p);
    const current = await db
      .selectFrom('agent_profiles')
      .select(['profile', 'status', 'revision', 'last_heartbeat_at'])
      .where('tenant_id', '=', p.tenantId)
      .where('agent_id', '=', p.agentId)
      .executeTakeFirst();
    const now = nowIso(this.clock);
    if (!current) {
      this.invalidate(p.tenantId);
      await db
        .insertInto('agent_profiles')
        .values({
          tenant_id: p.tenantId,
          agent_id: p.agentId,
          profile: encoded,
          status: p.status,
          last_heartbeat_at: p.lastHeartbeatAt,
          synced_at: p.syncedAt,
          revision: 1,
          changed_at: now,
          beat_recorded_at: now,
        })
        .onConflict((oc) =>
          oc.columns(['tenant_id', 'agent_id']).doUpdateSet({
            profile: encoded,
            status: p.status,
            last_heartbeat_at: p.lastHeartbeatAt,
            synced_at: p.syncedAt,
            revision: sql`agent_profiles.revision + 1`,
            changed_at: now,
            beat_recorded_at: now,
          }),
        )
        .execute();
      return;
    }
    const changed = current.profile !== encoded || current.status !== p.status;
    if (changed) this.invalidate(p.tenantId);
    // A heartbeat event may have arrived after the agents subgraph answered: the later time wins.
    const beat =
      [current.last_heartbeat_at, p.lastHeartbeatAt]
        .filter((x): x is string => x !== null)
        .sort()
        .pop() ?? null;
    await db
      .updateTable('agent_profiles')
      .set({
        profile: encoded,
        status: p.status,
        last_heartbeat_at: beat,
        synced_at: p.syncedAt,
        ...(changed ? { revision: Number(current.revision) + 1, changed_at: now } : {}),
        ...(beat !== current.last_heartbeat_at ? { beat_recorded_at: now } : {}),
      })
      .where('tenant_id', '=', p.tenantId)
      .where('agent_id', '=', p.agentId)
      .execute();
  }

  /** An AgentHeartbeat event: only the time changes (the index is not rebuilt for it). */
  async recordHeartbeat(tenantId: string, agentId: string, at: string): Promise<void> {
    await this.database.db
      .updateTable('agent_profiles')
      .set({ last_heartbeat_at: at, beat_recorded_at: nowIso(this.clock) })
      .where('tenant_id', '=', tenantId)
      .where('agent_id', '=', agentId)
      .where((eb) => eb.or([eb('last_heartbeat_at', 'is', null), eb('last_heartbeat_at', '<', at)]))
      .execute();
  }

  async profile(tenantId: string, agentId: string): Promise<AgentProfile | null> {
    const row = await this.database.db
      .selectFrom('agent_profiles')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('agent_id', '=', agentId)
      .executeTakeFirst();
    return row ? decodeProfile(row) : null;
  }

  /** Profiles synced before `before`, oldest first: what the refresh job reads again. */
  async staleProfiles(before: string, limit: number): Promise<{ tenantId: string; agentId: string }[]> {
    const rows = await this.database.db
      .selectFrom('agent_profiles')
      .select(['tenant_id', 'agent_id'])
      .where('synced_at', '<', before)
      .where('status', '!=', 'RETIRED')
      .orderBy('synced_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ tenantId: r.tenant_id, agentId: r.agent_id }));
  }

  /** The agents subgraph no longer has the agent: its copy and settings go. */
  async dropAgent(tenantId: string, agentId: string): Promise<void> {
    await this.database.db.deleteFrom('agent_profiles').where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).execute();
    await this.database.db.deleteFrom('agent_listings').where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).execute();
  }

  // --- Listings (discovery's own settings) ----------------------------------------------------

  /** The settings of an agent (defaults when never written) with its profile; null when discovery knows neither. */
  async listing(tenantId: string, agentId: string): Promise<ListingRow | null> {
    const [profile, row] = await Promise.all([
      this.profile(tenantId, agentId),
      this.database.db.selectFrom('agent_listings').selectAll().where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).executeTakeFirst(),
    ]);
    if (!row && !profile) return null;
    return toListing(tenantId, agentId, row, profile);
  }

  /** A public agent of any tenant, for anonymous card reads. */
  async publicListing(agentId: string): Promise<ListingRow | null> {
    const row = await this.database.db.selectFrom('agent_listings').selectAll().where('agent_id', '=', agentId).where('public', '=', 1).executeTakeFirst();
    if (!row) return null;
    const profile = await this.profile(row.tenant_id, agentId);
    return profile ? toListing(row.tenant_id, agentId, row, profile) : null;
  }

  async setListing(
    tenantId: string,
    agentId: string,
    apply: (current: ListingSettings) => ListingSettings,
    expectedVersion: number | null | undefined,
  ): Promise<ListingRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx) => {
      const now = nowIso(this.clock);
      const found = await trx.selectFrom('agent_listings').selectAll().where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).executeTakeFirst();
      const version = found ? Number(found.version) : 0;
      if (expectedVersion != null && expectedVersion !== version) {
        throw conflict(`The discovery settings of agent "${agentId}" are at version ${version}, not the expected ${expectedVersion}: reload and retry`, {
          agentId,
          expectedVersion,
          actualVersion: version,
        });
      }
      const current = found ? decodeSettings(found) : DEFAULT_SETTINGS;
      const next = apply(current);
      const { public: isPublic, ...rest } = next;
      if (!found) {
        await trx
          .insertInto('agent_listings')
          .values({
            tenant_id: tenantId,
            agent_id: agentId,
            public: isPublic ? 1 : 0,
            settings: JSON.stringify(rest),
            created_at: now,
            updated_at: now,
            version: 1,
          })
          .execute();
      } else {
        const updated = await trx
          .updateTable('agent_listings')
          .set({ public: isPublic ? 1 : 0, settings: JSON.stringify(rest), updated_at: now, version: version + 1 })
          .where('tenant_id', '=', tenantId)
          .where('agent_id', '=', agentId)
          .where('version', '=', version)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) throw conflict(`The discovery settings of agent "${agentId}" changed meanwhile: retry`, { agentId });
      }
      const row = await trx
        .selectFrom('agent_listings')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('agent_id', '=', agentId)
        .executeTakeFirstOrThrow();
      const profile = await trx.selectFrom('agent_profiles').selectAll().where('tenant_id', '=', tenantId).where('agent_id', '=', agentId).executeTakeFirst();
      return toListing(tenantId, agentId, row, profile ? decodeProfile(profile) : null);
    });
  }

  /**
   * Listed agents: the public ones of every tenant, and with `tenantId` also that tenant's private
   * ones; ordered by name, then id. Retired agents are never listed.
   */
  async catalog(tenantId: string | null): Promise<CatalogEntry[]> {
    const db = this.database.db;
    const listings = await db
      .selectFrom('agent_listings')
      .selectAll()
      .where((eb) => (tenantId === null ? eb('public', '=', 1) : eb.or([eb('public', '=', 1), eb('tenant_id', '=', tenantId)])))
      .execute();
    const byKey = new Map(listings.map((l) => [`${l.tenant_id}\u0000${l.agent_id}`, l]));
    const out: CatalogEntry[] = [];
    const tenants = [...new Set(listings.map((l) => l.tenant_id))];
    for (const t of tenants) {
      const ids = listings.filter((l) => l.tenant_id === t).map((l) => l.agent_id);
      for (let i = 0; i < ids.length; i += 500) {
        const rows = await db
          .selectFrom('agent_profiles')
          .selectAll()
          .where('tenant_id', '=', t)
          .where('agent_id', 'in', ids.slice(i, i + 500))
          .where('status', '!=', 'RETIRED')
          .execute();
        for (const r of rows) {
          const l = byKey.get(`${t}\u0000${r.agent_id}`);
          if (l) out.push({ profile: decodeProfile(r), settings: decodeSettings(l) });
        }
      }
    }
    out.sort((a, b) => (a.profile.name < b.profile.name ? -1 : a.profile.name > b.profile.name ? 1 : a.profile.agentId < b.profile.agentId ? -1 : 1));
    return out;
  }

  // --- Tasks (orchestration's events) --------------------------------------------------------

  async recordTaskState(tenantId: string, taskId: string, agentId: string | null, state: string, at: string): Promise<void> {
    await this.database.db
      .insertInto('agent_tasks')
      .values({ tenant_id: tenantId, task_id: taskId, agent_id: agentId, state, updated_at: at, recorded_at: nowIso(this.clock) })
      .onConflict((oc) =>
        // An agent once set is kept when a later event names none (a task released back to SUBMITTED keeps its last holder's history).
        oc
          .columns(['tenant_id', 'task_id'])
          .doUpdateSet({ agent_id: sql`coalesce(excluded.agent_id, agent_tasks.agent_id)`, state, updated_at: at, recorded_at: nowIso(this.clock) })
          .where('agent_tasks.updated_at', '<=', at),
      )
      .execute();
  }

  // --- Matching ---------------------------------------------------------------------------------

  /**
   * The tenant's match index (local agents and the remote catalog) and the liveness and load of
   * its agents. The index is rebuilt only when a profile or the remote catalog changed; both are
   * checked again at most every liveCacheMs, in the background (a match never waits for that),
   * and at once after a write through this store.
   */
  async matchState(tenantId: string): Promise<{ index: MatchIndex; live: Map<string, LiveState> }> {
    const cached = this.matching.get(tenantId);
    if (!cached || cached.stale || this.liveCacheMs === 0) {
      const fresh = await this.loadMatchState(tenantId, cached);
      this.matching.set(tenantId, fresh);
      return fresh;
    }
    if (this.clock() - cached.checkedAt >= this.liveCacheMs && !cached.refreshing) {
      cached.refreshing = this.loadMatchState(tenantId, cached).then(
        (fresh) => {
          if (this.matching.get(tenantId) === cached) this.matching.set(tenantId, fresh);
        },
        (err: unknown) => {
          cached.refreshing = undefined;
          this.logger.warn({ err, tenantId }, 'refreshing the match index failed; matches use the previous one');
        },
      );
    }
    return cached;
  }

  /**
   * After a change written through this store: the next match of the tenant waits for a rebuilt
   * index (other replicas see the change by the stamp, within liveCacheMs).
   */
  private invalidate(tenantId: string): void {
    const cached = this.matching.get(tenantId);
    if (cached) cached.stale = true;
  }

  private async loadMatchState(tenantId: string, previous: MatchState | undefined): Promise<MatchState> {
    const db = this.database.db;
    const checkedAt = this.clock();
    const stampRow = await db
      .selectFrom('agent_profiles')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('changed_at').as('r')])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const remoteStamp = await db
      .selectFrom('remote_agents')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('fetched_at').as('at')])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const stamp = { local: `${stampRow.n}|${stampRow.r}`, remote: `${remoteStamp.n}|${remoteStamp.at}` };
    let index: MatchIndex;
    if (previous && !previous.stale && previous.stamp.local === stamp.local && previous.stamp.remote === stamp.remote) index = previous.index;
    else if (previous && previous.stamp.remote === stamp.remote) {
      // Only profiles changed: patch the changed entries (a full rebuild re-reads and re-tokenises every agent).
      index = (await this.patchedIndex(tenantId, previous, Number(stampRow.n))) ?? (await this.buildMatchIndex(tenantId));
    } else index = await this.buildMatchIndex(tenantId);
    const live = previous ? await this.liveChanges(tenantId, previous.live, previous.checkedAt - LIVE_OVERLAP_MS) : await this.liveState(tenantId);
    return { stamp, index, live, checkedAt };
  }

  /**
   * The previous index with the profiles changed since its last check (less the overlap) read
   * again; null when that cannot be exact (agents were removed, or too many changed).
   */
  private async patchedIndex(tenantId: string, previous: MatchState, localCount: number): Promise<MatchIndex | null> {
    const since = nowIso(() => previous.checkedAt - LIVE_OVERLAP_MS);
    const rows = await this.database.db
      .selectFrom('agent_profiles')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('changed_at', '>=', since)
      .limit(2001)
      .execute();
    if (rows.length > 2000) return null;
    const entries = new Map(previous.index.agents.map((a) => [`${a.origin}\u0000${a.peerId ?? ''}\u0000${a.id}`, a]));
    for (const r of rows) entries.set(`LOCAL\u0000\u0000${r.agent_id}`, localEntry(decodeProfile(r)));
    const all = [...entries.values()];
    if (all.filter((a) => a.origin === 'LOCAL').length !== localCount) return null;
    return buildIndex(all);
  }

  private async buildMatchIndex(tenantId: string): Promise<MatchIndex> {
    const rows = await this.database.db.selectFrom('agent_profiles').selectAll().where('tenant_id', '=', tenantId).execute();
    const entries = rows.map((r) => localEntry(decodeProfile(r)));
    const remote = await this.remoteAgents(tenantId, null, 10_000);
    for (const r of remote) {
      entries.push(
        indexEntry(
          { id: r.id, name: r.name, description: r.description, skills: r.skills, labels: [] },
          { origin: 'REMOTE', peerId: r.peerId, trust: r.trust, status: 'ACTIVE', heartbeatIntervalSeconds: 30 },
        ),
      );
    }
    return buildIndex(entries);
  }

  /**
   * The live state updated with what was recorded since `since`: heartbeats read again, and the
   * task counts of the agents whose tasks changed counted again (a copy: matches running meanwhile
   * keep reading the previous one).
   */
  private async liveChanges(tenantId: string, previous: Map<string, LiveState>, since: number): Promise<Map<string, LiveState>> {
    const db = this.database.db;
    const after = nowIso(() => since);
    const beats = await db
      .selectFrom('agent_profiles')
      .select(['agent_id', 'last_heartbeat_at'])
      .where('tenant_id', '=', tenantId)
      .where('beat_recorded_at', '>=', after)
      .execute();
    const touched = await db
      .selectFrom('agent_tasks')
      .select('agent_id')
      .distinct()
      .where('tenant_id', '=', tenantId)
      .where('recorded_at', '>=', after)
      .where('agent_id', 'is not', null)
      .execute();
    if (beats.length === 0 && touched.length === 0) return previous;
    const state = new Map(previous);
    const entry = (id: string) => {
      const found = state.get(id);
      const copy = found ? { ...found } : { lastHeartbeatAt: null, activeTasks: 0, completed: 0, failed: 0 };
      state.set(id, copy);
      return copy;
    };
    for (const b of beats) Object.assign(entry(b.agent_id), { lastHeartbeatAt: b.last_heartbeat_at, lastHeartbeatMs: msOf(b.last_heartbeat_at) });
    const ids = touched.map((t) => t.agent_id as string);
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      for (const id of chunk) Object.assign(entry(id), { activeTasks: 0, completed: 0, failed: 0 });
      const counts = await db
        .selectFrom('agent_tasks')
        .select((eb) => ['agent_id', 'state', eb.fn.countAll<number>().as('n')])
        .where('tenant_id', '=', tenantId)
        .where('agent_id', 'in', chunk)
        .groupBy(['agent_id', 'state'])
        .execute();
      for (const c of counts) addCount(entry(c.agent_id as string), c.state, Number(c.n));
    }
    return state;
  }

  /** Heartbeats and task counts of the tenant's agents, now. */
  async liveState(tenantId: string): Promise<Map<string, LiveState>> {
    const db = this.database.db;
    const beats = await db.selectFrom('agent_profiles').select(['agent_id', 'last_heartbeat_at']).where('tenant_id', '=', tenantId).execute();
    const counts = await db
      .selectFrom('agent_tasks')
      .select((eb) => ['agent_id', 'state', eb.fn.countAll<number>().as('n')])
      .where('tenant_id', '=', tenantId)
      .where('agent_id', 'is not', null)
      .groupBy(['agent_id', 'state'])
      .execute();
    const state = new Map<string, LiveState>();
    for (const b of beats)
      state.set(b.agent_id, { lastHeartbeatAt: b.last_heartbeat_at, lastHeartbeatMs: msOf(b.last_heartbeat_at), activeTasks: 0, completed: 0, failed: 0 });
    for (const c of counts) {
      const s = state.get(c.agent_id as string);
      if (s) addCount(s, c.state, Number(c.n));
    }
    return state;
  }

  // --- Services ---------------------------------------------------------------------------------

  async registerService(tenantId: string, draft: ServiceDraft, request?: IdempotentRequest): Promise<ServiceRow> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx) =>
        once(
          trx,
          this.clock(),
          async () => {
            const now = nowIso(this.clock);
            const id = newId();
            const row = await trx
              .insertInto('services')
              .values({
                id,
                tenant_id: tenantId,
                name: draft.name,
                kind: draft.kind,
                endpoint: draft.endpoint,
                metadata: draft.metadata,
                owner: draft.owner,
                mode: draft.mode,
                ttl_seconds: draft.ttlSeconds,
                probe_url: draft.probeUrl,
                probe_interval_seconds: draft.probeIntervalSeconds,
                probe_timeout_ms: draft.probeTimeoutMs,
                // A TTL service registering is alive now; a probed one is UNKNOWN until probed (at once).
                status: draft.mode === 'TTL' ? 'UP' : 'UNKNOWN',
                status_reason: null,
                last_heartbeat_at: draft.mode === 'TTL' ? now : null,
                last_checked_at: null,
                status_changed_at: now,
                next_check_at: draft.mode === 'TTL' ? nowIso(() => this.clock() + (draft.ttlSeconds ?? 60) * 1000) : now,
                created_at: now,
                updated_at: now,
                version: 1,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            return decodeService(row);
          },
          replayById((sid) => this.service(tenantId, sid)),
        ),
      ),
    );
  }

  async service(tenantId: string, id: string): Promise<ServiceRow | null> {
    const row = await this.database.db.selectFrom('services').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeService(row) : null;
  }

  async services(
    tenantId: string,
    filter: { kind?: ServiceKind | null; status?: ServiceStatus | null; text?: string | null },
    page: PageQuery,
  ): Promise<Connection<ServiceRow>> {
    const db = this.database.db;
    const base = () => {
      let q = db.selectFrom('services').where('tenant_id', '=', tenantId);
      if (filter.kind) q = q.where('kind', '=', filter.kind);
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.text) q = q.where(sql<boolean>`lower(name) like ${`%${filter.text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`} escape '\\'`);
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
    return toConnection(rows.map(decodeService), page, Number(n));
  }

  async heartbeatService(tenantId: string, id: string): Promise<ServiceRow> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const found = await trx.selectFrom('services').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      if (!found) throw notFound('Service', id);
      if (found.mode !== 'TTL') throw conflict(`Service "${id}" is probed (mode PROBE); heartbeats are for TTL services`, { id, mode: found.mode });
      const now = nowIso(this.clock);
      const row = await this.changeStatus(trx, emit, decodeService(found), 'UP', null, {
        last_heartbeat_at: now,
        next_check_at: nowIso(() => this.clock() + Number(found.ttl_seconds ?? 60) * 1000),
      });
      return row;
    });
  }

  async deregisterService(tenantId: string, id: string): Promise<boolean> {
    const result = await this.database.db.deleteFrom('services').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Services whose check is due (any tenant): probes to run, TTLs run out. */
  async dueServices(limit: number): Promise<ServiceRow[]> {
    const rows = await this.database.db
      .selectFrom('services')
      .selectAll()
      .where('next_check_at', '<=', nowIso(this.clock))
      .orderBy('next_check_at')
      .limit(limit)
      .execute();
    return rows.map(decodeService);
  }

  /**
   * The outcome of a check: the status it leads to (an event when it changed), and when the next
   * one is due. Only applies to the version checked: a heartbeat meanwhile wins.
   */
  async recordCheck(service: ServiceRow, to: ServiceStatus, reason: string | null): Promise<ServiceRow | null> {
    return inTransaction(this.database, this.bus, this.logger, async (trx, emit) => {
      const now = this.clock();
      const next =
        service.mode === 'PROBE'
          ? nowIso(() => now + (service.probeIntervalSeconds ?? 30) * 1000)
          : // A TTL service that ran out is looked at again only after its next heartbeat.
            nowIso(() => now + 365 * 86_400_000);
      return this.changeStatus(trx, emit, service, to, reason, { last_checked_at: nowIso(() => now), next_check_at: next }, service.version);
    });
  }

  private async changeStatus(
    trx: Transaction<DiscoveryDB>,
    emit: Emit,
    current: ServiceRow,
    to: ServiceStatus,
    reason: string | null,
    extra: Partial<ServicesTable>,
    onlyVersion?: number,
  ): Promise<ServiceRow> {
    const now = nowIso(this.clock);
    const changed = current.status !== to;
    let q = trx
      .updateTable('services')
      .set({
        ...extra,
        status: to,
        status_reason: to === 'DOWN' ? reason : null,
        ...(changed ? { status_changed_at: now } : {}),
        updated_at: now,
        version: current.version + 1,
      })
      .where('tenant_id', '=', current.tenantId)
      .where('id', '=', current.id);
    if (onlyVersion !== undefined) q = q.where('version', '=', onlyVersion);
    const row = await q.returningAll().executeTakeFirst();
    if (!row) return current;
    if (changed) {
      emit({
        type: ServiceStatusChanged,
        tenantId: current.tenantId,
        subjectId: current.id,
        occurredAt: now,
        payload: { serviceId: current.id, from: current.status, to, reason: to === 'DOWN' ? reason : null } satisfies ServiceStatusPayload,
      });
    }
    return decodeService(row);
  }

  // --- Peers ------------------------------------------------------------------------------------

  async registerPeer(tenantId: string, draft: PeerDraft, request?: IdempotentRequest): Promise<PeerRow> {
    return this.idempotency.run(request, (once) =>
      inTransaction(this.database, this.bus, this.logger, (trx) =>
        once(
          trx,
          this.clock(),
          async () => {
            const now = nowIso(this.clock);
            const row = await trx
              .insertInto('peers')
              .values({
                id: newId(),
                tenant_id: tenantId,
                name: draft.name,
                kind: draft.kind,
                url: draft.url,
                trust: draft.trust,
                jwks: draft.jwks,
                sync_interval_seconds: draft.syncIntervalSeconds,
                state: 'PENDING',
                last_error: null,
                consecutive_failures: 0,
                last_sync_at: null,
                last_success_at: null,
                next_sync_at: now,
                agent_count: 0,
                created_at: now,
                updated_at: now,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            return decodePeer(row);
          },
          replayById((pid) => this.peer(tenantId, pid)),
        ),
      ),
    );
  }

  async peer(tenantId: string, id: string): Promise<PeerRow | null> {
    const row = await this.database.db.selectFrom('peers').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodePeer(row) : null;
  }

  async peers(tenantId: string): Promise<PeerRow[]> {
    const rows = await this.database.db.selectFrom('peers').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at').orderBy('id').execute();
    return rows.map(decodePeer);
  }

  async removePeer(tenantId: string, id: string): Promise<boolean> {
    this.invalidate(tenantId);
    return inTransaction(this.database, this.bus, this.logger, async (trx) => {
      await trx.deleteFrom('remote_agents').where('tenant_id', '=', tenantId).where('peer_id', '=', id).execute();
      const result = await trx.deleteFrom('peers').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  async duePeers(limit: number): Promise<PeerRow[]> {
    const rows = await this.database.db
      .selectFrom('peers')
      .selectAll()
      .where('next_sync_at', '<=', nowIso(this.clock))
      .orderBy('next_sync_at')
      .limit(limit)
      .execute();
    return rows.map(decodePeer);
  }

  /** A pull succeeded: the remote catalog of the peer becomes exactly `agents` (the ones it no longer lists disappear). */
  async recordPullSuccess(peer: PeerRow, agents: PulledAgent[]): Promise<PeerRow> {
    this.invalidate(peer.tenantId);
    return inTransaction(this.database, this.bus, this.logger, async (trx) => {
      const now = nowIso(this.clock);
      await trx.deleteFrom('remote_agents').where('tenant_id', '=', peer.tenantId).where('peer_id', '=', peer.id).execute();
      for (let i = 0; i < agents.length; i += 100) {
        const chunk = agents.slice(i, i + 100);
        if (chunk.length === 0) continue;
        await trx
          .insertInto('remote_agents')
          .values(
            chunk.map((a) => ({
              tenant_id: peer.tenantId,
              peer_id: peer.id,
              remote_id: a.remoteId,
              name: a.name,
              description: a.description,
              skills: JSON.stringify(a.skills),
              card: JSON.stringify(a.card),
              source_url: a.sourceUrl,
              fetched_at: now,
              signature_verified: a.signatureVerified ? 1 : 0,
              signature_error: a.signatureError,
            })),
          )
          .onConflict((oc) => oc.columns(['peer_id', 'remote_id']).doNothing())
          .execute();
      }
      const row = await trx
        .updateTable('peers')
        .set({
          state: 'OK',
          last_error: null,
          consecutive_failures: 0,
          last_sync_at: now,
          last_success_at: now,
          next_sync_at: nowIso(() => this.clock() + peer.syncIntervalSeconds * 1000),
          agent_count: new Set(agents.map((a) => a.remoteId)).size,
          updated_at: now,
        })
        .where('id', '=', peer.id)
        .returningAll()
        .executeTakeFirst();
      return row ? decodePeer(row) : peer;
    });
  }

  /** A pull failed: the catalog stays as last pulled, the next pull is backed off. */
  async recordPullFailure(peer: PeerRow, error: string): Promise<PeerRow> {
    const now = nowIso(this.clock);
    const failures = peer.consecutiveFailures + 1;
    const row = await this.database.db
      .updateTable('peers')
      .set({
        state: 'FAILING',
        last_error: error.slice(0, 500),
        consecutive_failures: failures,
        last_sync_at: now,
        next_sync_at: nowIso(() => this.clock() + backoffSeconds(peer.syncIntervalSeconds, failures) * 1000),
        updated_at: now,
      })
      .where('id', '=', peer.id)
      .returningAll()
      .executeTakeFirst();
    return row ? decodePeer(row) : peer;
  }

  async remoteAgents(tenantId: string, peerId: string | null, limit: number): Promise<RemoteAgentRow[]> {
    let q = this.database.db
      .selectFrom('remote_agents')
      .innerJoin('peers', 'peers.id', 'remote_agents.peer_id')
      .selectAll('remote_agents')
      .select('peers.trust as trust')
      .where('remote_agents.tenant_id', '=', tenantId);
    if (peerId) q = q.where('remote_agents.peer_id', '=', peerId);
    const rows = await q.orderBy('remote_agents.name').orderBy('remote_agents.remote_id').limit(limit).execute();
    return rows.map((r) => ({
      id: r.remote_id,
      tenantId: r.tenant_id,
      peerId: r.peer_id,
      name: r.name,
      description: r.description,
      skills: JSON.parse(r.skills) as AgentSkill[],
      card: JSON.parse(r.card) as unknown,
      sourceUrl: r.source_url,
      fetchedAt: r.fetched_at,
      signatureVerified: Number(r.signature_verified) === 1,
      signatureError: r.signature_error,
      trust: r.trust as TrustLevel,
    }));
  }
}

/** Writes recorded this long before a match state's last check are read again (clock skew between replicas). */
const LIVE_OVERLAP_MS = 5000;

const msOf = (at: string | null) => (at === null ? null : Date.parse(at));

function addCount(s: LiveState, state: string, n: number): void {
  if (ACTIVE_TASK_STATES.includes(state)) s.activeTasks += n;
  else if (state === 'COMPLETED') s.completed += n;
  else if (state === 'FAILED') s.failed += n;
}

/** The profile column: the profile minus what has a column of its own. */
export function encodeProfile(p: AgentProfile): string {
  const { tenantId: _t, agentId: _a, status: _s, lastHeartbeatAt: _h, syncedAt: _y, ...rest } = p;
  return JSON.stringify(rest);
}

function decodeProfile(r: Selectable<AgentProfilesTable>): AgentProfile {
  return {
    ...(JSON.parse(r.profile) as Omit<AgentProfile, 'tenantId' | 'agentId' | 'status' | 'lastHeartbeatAt' | 'syncedAt'>),
    tenantId: r.tenant_id,
    agentId: r.agent_id,
    status: r.status,
    lastHeartbeatAt: r.last_heartbeat_at,
    syncedAt: r.synced_at,
  };
}

function decodeSettings(r: Selectable<AgentListingsTable>): ListingSettings {
  return { ...DEFAULT_SETTINGS, ...(JSON.parse(r.settings) as Partial<ListingSettings>), public: Number(r.public) === 1 };
}

function toListing(tenantId: string, agentId: string, row: Selectable<AgentListingsTable> | undefined, profile: AgentProfile | null): ListingRow {
  const settings = row ? decodeSettings(row) : DEFAULT_SETTINGS;
  const since = row?.created_at ?? profile?.syncedAt ?? new Date(0).toISOString();
  return {
    ...settings,
    tenantId,
    agentId,
    profile,
    createdAt: since,
    updatedAt: row?.updated_at ?? since,
    version: row ? Number(row.version) : 0,
  };
}

function decodeService(r: Selectable<ServicesTable>): ServiceRow {
  const n = (v: number | null) => (v === null ? null : Number(v));
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    kind: r.kind,
    endpoint: r.endpoint,
    metadata: JSON.parse(r.metadata) as unknown,
    owner: r.owner,
    mode: r.mode,
    ttlSeconds: n(r.ttl_seconds),
    probeUrl: r.probe_url,
    probeIntervalSeconds: n(r.probe_interval_seconds),
    probeTimeoutMs: n(r.probe_timeout_ms),
    status: r.status,
    statusReason: r.status_reason,
    lastHeartbeatAt: r.last_heartbeat_at,
    lastCheckedAt: r.last_checked_at,
    statusChangedAt: r.status_changed_at,
    nextCheckAt: r.next_check_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}

function decodePeer(r: Selectable<PeersTable>): PeerRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    kind: r.kind,
    url: r.url,
    trust: r.trust,
    jwks: r.jwks === null ? null : (JSON.parse(r.jwks) as unknown),
    syncIntervalSeconds: Number(r.sync_interval_seconds),
    state: r.state,
    lastError: r.last_error,
    consecutiveFailures: Number(r.consecutive_failures),
    lastSyncAt: r.last_sync_at,
    lastSuccessAt: r.last_success_at,
    nextSyncAt: r.next_sync_at,
    agentCount: Number(r.agent_count),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export type { Db };
