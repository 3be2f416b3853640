// All SQL of the integrations subgraph. Every statement a client causes is scoped to a tenant;
// the feed, the sender and the trigger runner work across tenants. Writes run in one transaction
// with their outbox events (WebhookDeliveryUpdated, WebhookEndpointDisabled, inbound events).
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { notFound } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { Idempotency, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  HOOK_PATH_SEGMENT,
  INBOUND_EVENT_TYPE,
  newInboundSecret,
  newSigningSecret,
  secretPrefix,
  WEBHOOK_DELIVERY_UPDATED,
  WEBHOOK_ENDPOINT_DISABLED,
  type EndpointDraft,
  type InboundProvider,
  type TriggerActionKind,
  type TriggerDraft,
} from './domain.ts';

// --- Tables ----------------------------------------------------------------------------------

export interface IntegrationsDB {
  webhook_endpoints: {
    id: string;
    tenant_id: string;
    url: string;
    description: string | null;
    event_types: string;
    filter: string | null;
    enabled: number;
    disabled_reason: string | null;
    rate_limit_per_second: number | null;
    failing_since: string | null;
    created_at: string;
    updated_at: string;
  };
  webhook_secrets: { id: string; endpoint_id: string; secret: string; created_at: string; expires_at: string | null };
  integration_events: {
    id: string;
    tenant_id: string;
    source: string;
    sequence: number;
    type: string;
    subject_id: string;
    occurred_at: string;
    payload: string;
    received_at: string;
  };
  event_cursors: { source: string; tenant_id: string; last_sequence: number; updated_at: string };
  webhook_deliveries: {
    id: string;
    tenant_id: string;
    endpoint_id: string;
    message_id: string;
    event_type: string;
    payload: string;
    status: DeliveryStatus;
    attempt_count: number;
    next_attempt_at: string | null;
    locked_until: string | null;
    created_at: string;
    updated_at: string;
  };
  webhook_attempts: {
    delivery_id: string;
    attempt: number;
    at: string;
    status_code: number | null;
    latency_ms: number;
    error: string | null;
    response_excerpt: string | null;
  };
  inbound_integrations: { id: string; tenant_id: string; provider: InboundProvider; name: string; secret: string; created_at: string };
  inbound_receipts: { integration_id: string; delivery_id: string; received_at: string };
  triggers: {
    id: string;
    tenant_id: string;
    name: string;
    event_type: string;
    filter: string | null;
    action: TriggerActionKind;
    action_config: string;
    enabled: number;
    created_at: string;
    updated_at: string;
  };
  trigger_runs: {
    id: string;
    tenant_id: string;
    trigger_id: string;
    event_id: string;
    event_type: string;
    status: TriggerRunStatus;
    result: string | null;
    error: string | null;
    created_at: string;
    updated_at: string;
  };
}

export type DeliveryStatus = 'PENDING' | 'SUCCEEDED' | 'DEAD';
export type TriggerRunStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';

// --- Rows as resolvers see them --------------------------------------------------------------

export interface WebhookSecretRow {
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
}

export interface WebhookEndpointRow {
  id: string;
  tenantId: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  filter: string | null;
  enabled: boolean;
  disabledReason: string | null;
  rateLimitPerSecond: number | null;
  failingSince: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface WebhookDeliveryRow {
  id: string;
  tenantId: string;
  endpointId: string;
  messageId: string;
  eventType: string;
  status: DeliveryStatus;
  payload: unknown;
  /** The body exactly as signed and sent. */
  body: string;
  attemptCount: number;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface WebhookAttemptRow {
  attempt: number;
  at: string;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  responseExcerpt: string | null;
}

export interface InboundIntegrationRow {
  id: string;
  tenantId: string;
  provider: InboundProvider;
  name: string;
  hookPath: string;
  secret: string;
  createdAt: string;
}

export interface TriggerRow {
  id: string;
  tenantId: string;
  name: string;
  eventType: string;
  filter: string | null;
  action: TriggerActionKind;
  actionConfig: Record<string, unknown>;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface TriggerRunRow {
  id: string;
  tenantId: string;
  triggerId: string;
  eventId: string;
  eventType: string;
  status: TriggerRunStatus;
  result: unknown;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface DeliveryEventPayload extends Record<string, unknown> {
  deliveryId: string;
  endpointId: string;
  status: DeliveryStatus;
  attemptCount: number;
}

export interface PageQuery {
  first: number;
  limit: number;
  after: Cursor | null;
}

/** One attempt's outcome, as the sender measured it. */
export interface AttemptOutcome {
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  responseExcerpt: string | null;
  /** Null: succeeded. Otherwise the delay before the next attempt, or 'dead' when the schedule ran out. */
  retryInMs: number | null | 'dead';
}

/** What the feed takes in from one source for one tenant in one transaction. */
export interface IngestBatch {
  source: string;
  tenantId: string;
  /** The cursor the batch was read after (a concurrent replica that moved it makes this a no-op). */
  fromSequence: number;
  toSequence: number;
  events: { event: DomainEvent; endpointIds: string[]; triggerIds: string[] }[];
}

/** The body sent for an event: Standard Webhooks' recommended { type, timestamp, data } shape. */
export function messageBody(event: Pick<DomainEvent, 'type' | 'occurredAt' | 'payload' | 'subjectId'>): string {
  return JSON.stringify({ type: event.type, timestamp: event.occurredAt, subjectId: event.subjectId, data: event.payload });
}

const hookPath = (provider: InboundProvider, id: string) => `/v1/hooks/${HOOK_PATH_SEGMENT[provider]}/${id}`;

export class IntegrationsStore {
  constructor(
    private readonly database: Database<IntegrationsDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  now(): number {
    return this.clock();
  }

  get db(): Kysely<IntegrationsDB> {
    return this.database.db;
  }

  private tx<T>(fn: (trx: Transaction<IntegrationsDB>, emit: Emit) => Promise<T>): Promise<T> {
    return inTransaction(this.database, this.bus, this.logger, fn);
  }

  // --- Endpoints -------------------------------------------------------------------------------

  async createEndpoint(tenantId: string, draft: EndpointDraft, request?: IdempotentRequest): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
    return this.idempotency.run(request, (once) =>
      this.tx((trx) =>
        once(
          trx,
          this.clock(),
          async () => {
            const now = nowIso(this.clock);
            const id = newId();
            const row = await trx
              .insertInto('webhook_endpoints')
              .values({
                id,
                tenant_id: tenantId,
                url: draft.url,
                description: draft.description,
                event_types: JSON.stringify(draft.eventTypes),
                filter: draft.filter,
                enabled: draft.enabled ? 1 : 0,
                disabled_reason: null,
                rate_limit_per_second: draft.rateLimitPerSecond,
                failing_since: null,
                created_at: now,
                updated_at: now,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            const secret = newSigningSecret();
            await trx.insertInto('webhook_secrets').values({ id: newId(), endpoint_id: id, secret, created_at: now, expires_at: null }).execute();
            return { endpoint: decodeEndpoint(row), secret };
          },
          {
            save: (r) => r.endpoint.id,
            load: async (saved) => {
              const endpoint = await this.getEndpoint(tenantId, String(saved), trx);
              if (!endpoint) throw new Error(`the endpoint an Idempotency-Key created (${String(saved)}) no longer exists`);
              const [current] = await this.signingSecrets(endpoint.id, trx);
              return { endpoint, secret: current ?? '' };
            },
          },
        ),
      ),
    );
  }

  async getEndpoint(tenantId: string, id: string, db: Kysely<IntegrationsDB> | Transaction<IntegrationsDB> = this.db): Promise<WebhookEndpointRow | null> {
    const row = await db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeEndpoint(row) : null;
  }

  async listEndpoints(tenantId: string, page: PageQuery): Promise<Connection<WebhookEndpointRow>> {
    let q = this.db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', tenantId);
    const after = page.after;
    if (after) q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await this.db
      .selectFrom('webhook_endpoints')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decodeEndpoint), page, Number(n));
  }

  /** The enabled endpoints of a tenant (the feed matches events against them). */
  async enabledEndpoints(tenantId: string): Promise<WebhookEndpointRow[]> {
    const rows = await this.db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', tenantId).where('enabled', '=', 1).execute();
    return rows.map(decodeEndpoint);
  }

  async updateEndpoint(tenantId: string, id: string, patch: Partial<EndpointDraft>): Promise<WebhookEndpointRow> {
    return this.tx(async (trx) => {
      const row = await trx
        .updateTable('webhook_endpoints')
        .set({
          ...(patch.url !== undefined ? { url: patch.url } : {}),
          ...(patch.description !== undefined ? { description: patch.description } : {}),
          ...(patch.eventTypes !== undefined ? { event_types: JSON.stringify(patch.eventTypes) } : {}),
          ...(patch.filter !== undefined ? { filter: patch.filter } : {}),
          ...(patch.enabled !== undefined ? { enabled: patch.enabled ? 1 : 0, ...(patch.enabled ? { disabled_reason: null, failing_since: null } : {}) } : {}),
          ...(patch.rateLimitPerSecond !== undefined ? { rate_limit_per_second: patch.rateLimitPerSecond } : {}),
          updated_at: nowIso(this.clock),
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound('WebhookEndpoint', id);
      return decodeEndpoint(row);
    });
  }

  async deleteEndpoint(tenantId: string, id: string): Promise<boolean> {
    return this.tx(async (trx) => {
      const found = await trx.deleteFrom('webhook_endpoints').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      if (Number(found.numDeletedRows) === 0) return false;
      await trx.deleteFrom('webhook_secrets').where('endpoint_id', '=', id).execute();
      await trx
        .deleteFrom('webhook_attempts')
        .where('delivery_id', 'in', trx.selectFrom('webhook_deliveries').select('id').where('endpoint_id', '=', id))
        .execute();
      await trx.deleteFrom('webhook_deliveries').where('endpoint_id', '=', id).execute();
      return true;
    });
  }

  /** A new current secret; the ones signing now keep signing until now + overlap. */
  async rotateSecret(tenantId: string, id: string, overlapSeconds: number): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
    return this.tx(async (trx) => {
      const endpoint = await this.getEndpoint(tenantId, id, trx);
      if (!endpoint) throw notFound('WebhookEndpoint', id);
      const now = this.clock();
      const until = new Date(now + overlapSeconds * 1000).toISOString();
      await trx
        .updateTable('webhook_secrets')
        .set({ expires_at: until })
        .where('endpoint_id', '=', id)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', until)]))
        .execute();
      // Expired ones are of no use any more.
      await trx.deleteFrom('webhook_secrets').where('endpoint_id', '=', id).where('expires_at', '<=', new Date(now).toISOString()).execute();
      const secret = newSigningSecret();
      await trx
        .insertInto('webhook_secrets')
        .values({ id: newId(), endpoint_id: id, secret, created_at: new Date(now).toISOString(), expires_at: null })
        .execute();
      await trx
        .updateTable('webhook_endpoints')
        .set({ updated_at: new Date(now).toISOString() })
        .where('id', '=', id)
        .execute();
      return { endpoint, secret };
    });
  }

  /** The secrets that sign now, the current one first. */
  async signingSecrets(endpointId: string, db: Kysely<IntegrationsDB> | Transaction<IntegrationsDB> = this.db): Promise<string[]> {
    const now = nowIso(this.clock);
    const rows = await db
      .selectFrom('webhook_secrets')
      .select(['secret', 'expires_at', 'created_at'])
      .where('endpoint_id', '=', endpointId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .orderBy('created_at', 'desc')
      .execute();
    // The current one (no end) first: it is the one a new receiver knows.
    return rows.sort((a, b) => Number(a.expires_at !== null) - Number(b.expires_at !== null)).map((r) => r.secret);
  }

  async secretsOf(endpointId: string): Promise<WebhookSecretRow[]> {
    const now = nowIso(this.clock);
    const rows = await this.db
      .selectFrom('webhook_secrets')
      .selectAll()
      .where('endpoint_id', '=', endpointId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .orderBy('created_at', 'desc')
      .execute();
    return rows.map((r) => ({ prefix: secretPrefix(r.secret), createdAt: r.created_at, expiresAt: r.expires_at }));
  }

  // --- The feed: events in, deliveries and trigger runs queued ---------------------------------

  /** Tenants that have an endpoint or a trigger: the feed reads the sources' logs of these. */
  async activeTenants(): Promise<string[]> {
    const rows = await this.db.selectFrom('webhook_endpoints').select('tenant_id').union(this.db.selectFrom('triggers').select('tenant_id')).execute();
    return rows.map((r) => r.tenant_id);
  }

  async cursor(source: string, tenantId: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('event_cursors')
      .select('last_sequence')
      .where('source', '=', source)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return row ? Number(row.last_sequence) : null;
  }

  /** Starts a cursor (at the source's head: history before the first endpoint or trigger is not sent); false when one exists. */
  async startCursor(source: string, tenantId: string, sequence: number): Promise<boolean> {
    const result = await this.tx((trx) =>
      trx
        .insertInto('event_cursors')
        .values({ source, tenant_id: tenantId, last_sequence: sequence, updated_at: nowIso(this.clock) })
        .onConflict((oc) => oc.columns(['source', 'tenant_id']).doNothing())
        .executeTakeFirst(),
    );
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /**
   * Takes in a batch in one transaction: the events, a delivery per matching endpoint, a run per
   * matching trigger, and the cursor moved past them. Either all of it commits or none: an event
   * is queued exactly once however often it is read. Returns false when another process moved the
   * cursor first (nothing written).
   */
  async ingest(batch: IngestBatch): Promise<{ deliveries: number; runs: number } | false> {
    return this.tx(async (trx) => {
      const now = nowIso(this.clock);
      const moved = await trx
        .updateTable('event_cursors')
        .set({ last_sequence: batch.toSequence, updated_at: now })
        .where('source', '=', batch.source)
        .where('tenant_id', '=', batch.tenantId)
        .where('last_sequence', '=', batch.fromSequence)
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return false;
      let deliveries = 0;
      let runs = 0;
      const events = batch.events.filter((e) => e.endpointIds.length > 0 || e.triggerIds.length > 0);
      for (let i = 0; i < events.length; i += 200) {
        const chunk = events.slice(i, i + 200);
        await trx
          .insertInto('integration_events')
          .values(
            chunk.map(({ event }) => ({
              id: event.id,
              tenant_id: event.tenantId,
              source: batch.source,
              sequence: event.sequence,
              type: event.type,
              subject_id: event.subjectId,
              occurred_at: event.occurredAt,
              payload: JSON.stringify(event.payload),
              received_at: now,
            })),
          )
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        const rows = chunk.flatMap(({ event, endpointIds }) => endpointIds.map((endpointId) => deliveryValues(event, endpointId, now)));
        if (rows.length > 0) {
          const r = await trx
            .insertInto('webhook_deliveries')
            .values(rows)
            .onConflict((oc) => oc.columns(['endpoint_id', 'message_id']).doNothing())
            .executeTakeFirst();
          deliveries += Number(r.numInsertedOrUpdatedRows ?? 0);
        }
        const runRows = chunk.flatMap(({ event, triggerIds }) =>
          triggerIds.map((triggerId) => ({
            id: newId(),
            tenant_id: event.tenantId,
            trigger_id: triggerId,
            event_id: event.id,
            event_type: event.type,
            status: 'PENDING' as const,
            result: null,
            error: null,
            created_at: now,
            updated_at: now,
          })),
        );
        if (runRows.length > 0) {
          const r = await trx
            .insertInto('trigger_runs')
            .values(runRows)
            .onConflict((oc) => oc.columns(['trigger_id', 'event_id']).doNothing())
            .executeTakeFirst();
          runs += Number(r.numInsertedOrUpdatedRows ?? 0);
        }
      }
      return { deliveries, runs };
    });
  }

  async event(id: string): Promise<DomainEvent | null> {
    const row = await this.db.selectFrom('integration_events').selectAll().where('id', '=', id).executeTakeFirst();
    return row
      ? {
          id: row.id,
          sequence: Number(row.sequence),
          type: row.type,
          tenantId: row.tenant_id,
          subjectId: row.subject_id,
          occurredAt: row.occurred_at,
          payload: JSON.parse(row.payload) as Record<string, unknown>,
        }
      : null;
  }

  // --- Deliveries ------------------------------------------------------------------------------

  /** Queues one event to one endpoint (a test event, a trigger's DELIVER_TO_ENDPOINT); an existing delivery of it is kept. */
  async enqueue(
    tenantId: string,
    endpointId: string,
    event: Pick<DomainEvent, 'id' | 'type' | 'occurredAt' | 'payload' | 'subjectId'>,
  ): Promise<WebhookDeliveryRow> {
    return this.tx(async (trx, emit) => {
      const endpoint = await this.getEndpoint(tenantId, endpointId, trx);
      if (!endpoint) throw notFound('WebhookEndpoint', endpointId);
      const now = nowIso(this.clock);
      await trx
        .insertInto('webhook_deliveries')
        .values(deliveryValues({ ...event, tenantId }, endpointId, now))
        .onConflict((oc) => oc.columns(['endpoint_id', 'message_id']).doNothing())
        .execute();
      const row = await trx
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('endpoint_id', '=', endpointId)
        .where('message_id', '=', event.id)
        .executeTakeFirstOrThrow();
      const delivery = decodeDelivery(row);
      emitDelivery(emit, delivery, now);
      return delivery;
    });
  }

  async getDelivery(tenantId: string, id: string): Promise<WebhookDeliveryRow | null> {
    const row = await this.db.selectFrom('webhook_deliveries').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeDelivery(row) : null;
  }

  async listDeliveries(tenantId: string, endpointId: string, status: DeliveryStatus | null, page: PageQuery): Promise<Connection<WebhookDeliveryRow>> {
    const base = this.db
      .selectFrom('webhook_deliveries')
      .where('tenant_id', '=', tenantId)
      .where('endpoint_id', '=', endpointId)
      .$if(status !== null, (q) => q.where('status', '=', status as DeliveryStatus));
    let q = base.selectAll();
    const after = page.after;
    if (after) q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return toConnection(rows.map(decodeDelivery), page, Number(n));
  }

  async attempts(deliveryId: string): Promise<WebhookAttemptRow[]> {
    const rows = await this.db.selectFrom('webhook_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempt').execute();
    return rows.map((r) => ({
      attempt: Number(r.attempt),
      at: r.at,
      statusCode: r.status_code === null ? null : Number(r.status_code),
      latencyMs: Number(r.latency_ms),
      error: r.error,
      responseExcerpt: r.response_excerpt,
    }));
  }

  /**
   * Takes up to `limit` due deliveries of enabled endpoints and holds them until `leaseMs` from
   * now: a sender that dies holding them lets another take them once the lease passed. On
   * PostgreSQL replicas take disjoint rows (FOR UPDATE SKIP LOCKED).
   */
  async claimDue(limit: number, leaseMs: number): Promise<(WebhookDeliveryRow & { url: string; rateLimitPerSecond: number | null })[]> {
    const now = nowIso(this.clock);
    const until = new Date(this.clock() + leaseMs).toISOString();
    return this.database.transaction(async (trx) => {
      let due = trx
        .selectFrom('webhook_deliveries')
        .select('webhook_deliveries.id')
        .where('status', '=', 'PENDING')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .where('endpoint_id', 'in', trx.selectFrom('webhook_endpoints').select('id').where('enabled', '=', 1))
        .orderBy('next_attempt_at')
        .limit(limit);
      if (this.database.dialect === 'postgres') due = due.forUpdate().skipLocked();
      const ids = (await due.execute()).map((r) => r.id);
      if (ids.length === 0) return [];
      const rows = await trx.updateTable('webhook_deliveries').set({ locked_until: until }).where('id', 'in', ids).returningAll().execute();
      const endpoints = await trx
        .selectFrom('webhook_endpoints')
        .select(['id', 'url', 'rate_limit_per_second'])
        .where('id', 'in', [...new Set(rows.map((r) => r.endpoint_id))])
        .execute();
      const byId = new Map(endpoints.map((e) => [e.id, e]));
      return rows.flatMap((r) => {
        const e = byId.get(r.endpoint_id);
        return e ? [{ ...decodeDelivery(r), url: e.url, rateLimitPerSecond: e.rate_limit_per_second === null ? null : Number(e.rate_limit_per_second) }] : [];
      });
    });
  }

  /** Gives a claimed delivery back without an attempt (its endpoint's rate limit): due again at `at`. */
  async postpone(id: string, atMs: number): Promise<void> {
    await this.database.transaction((trx) =>
      trx
        .updateTable('webhook_deliveries')
        .set({ locked_until: null, next_attempt_at: new Date(atMs).toISOString() })
        .where('id', '=', id)
        .execute(),
    );
  }

  /** SQLite (one process per file): holds a dead process left are void at start. */
  async releaseLocks(): Promise<void> {
    await this.database.transaction((trx) => trx.updateTable('webhook_deliveries').set({ locked_until: null }).where('locked_until', 'is not', null).execute());
  }

  /**
   * Records an attempt and what follows: SUCCEEDED, PENDING again at the next retry, or DEAD. An
   * endpoint failing for longer than `disableAfterMs` when a delivery of it goes DEAD is disabled
   * (WebhookEndpointDisabled). Returns the delivery as it now is.
   */
  async recordAttempt(delivery: WebhookDeliveryRow, outcome: AttemptOutcome, disableAfterMs: number): Promise<WebhookDeliveryRow> {
    return this.tx(async (trx, emit) => {
      const nowMs = this.clock();
      const now = new Date(nowMs).toISOString();
      // The row is held under this sender's lease: its attempt count is the claimed one.
      const attempt = delivery.attemptCount + 1;
      const status: DeliveryStatus = outcome.retryInMs === null ? 'SUCCEEDED' : outcome.retryInMs === 'dead' ? 'DEAD' : 'PENDING';
      const next = typeof outcome.retryInMs === 'number' ? new Date(nowMs + outcome.retryInMs).toISOString() : null;
      const row = await trx
        .updateTable('webhook_deliveries')
        .set({ status, attempt_count: attempt, next_attempt_at: next, locked_until: null, updated_at: now })
        .where('id', '=', delivery.id)
        .returningAll()
        .executeTakeFirst();
      if (!row) return delivery; // the endpoint was deleted meanwhile
      await trx
        .insertInto('webhook_attempts')
        .values({
          delivery_id: delivery.id,
          attempt,
          at: now,
          status_code: outcome.statusCode,
          latency_ms: Math.round(outcome.latencyMs),
          error: outcome.error,
          response_excerpt: outcome.responseExcerpt,
        })
        // Two senders on one delivery (a lease that passed mid-send): the first record stays.
        .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
        .execute();
      if (status === 'SUCCEEDED') {
        // One statement on the hot path: it changes a row only after failures.
        await trx
          .updateTable('webhook_endpoints')
          .set({ failing_since: null })
          .where('id', '=', delivery.endpointId)
          .where('failing_since', 'is not', null)
          .execute();
      } else {
        const endpoint = await trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', delivery.endpointId).executeTakeFirst();
        if (endpoint) {
          const since = endpoint.failing_since ?? now;
          if (endpoint.failing_since === null) await trx.updateTable('webhook_endpoints').set({ failing_since: now }).where('id', '=', endpoint.id).execute();
          if (status === 'DEAD' && endpoint.enabled === 1 && nowMs - Date.parse(since) >= disableAfterMs) {
            const reason = `every delivery failed since ${since}; the last one was dead-lettered after ${attempt} attempts`;
            await trx.updateTable('webhook_endpoints').set({ enabled: 0, disabled_reason: reason, updated_at: now }).where('id', '=', endpoint.id).execute();
            emit({
              type: WEBHOOK_ENDPOINT_DISABLED,
              tenantId: endpoint.tenant_id,
              subjectId: endpoint.id,
              occurredAt: now,
              payload: { endpointId: endpoint.id, url: endpoint.url, reason },
            });
          }
        }
      }
      const decoded = decodeDelivery(row);
      emitDelivery(emit, decoded, now);
      return decoded;
    });
  }

  /** Due now with a fresh schedule (attempts so far stay in the log). */
  async retry(tenantId: string, id: string): Promise<WebhookDeliveryRow> {
    return this.tx(async (trx, emit) => {
      const now = nowIso(this.clock);
      const row = await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'PENDING', next_attempt_at: now, locked_until: null, updated_at: now })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound('WebhookDelivery', id);
      const d = decodeDelivery(row);
      emitDelivery(emit, d, now);
      return d;
    });
  }

  /**
   * The events received in [from, to) that the endpoint asks for, queued (again): a delivery that
   * exists is due now once more, a missing one is created. `keep` applies the endpoint's filter.
   */
  async replay(tenantId: string, endpoint: WebhookEndpointRow, from: string, to: string, keep: (event: DomainEvent) => Promise<boolean>): Promise<number> {
    const rows = await this.db
      .selectFrom('integration_events')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('received_at', '>=', from)
      .where('received_at', '<', to)
      .where('type', 'in', endpoint.eventTypes)
      .orderBy('received_at')
      .limit(10_000)
      .execute();
    const events: DomainEvent[] = [];
    for (const r of rows) {
      const event: DomainEvent = {
        id: r.id,
        sequence: Number(r.sequence),
        type: r.type,
        tenantId: r.tenant_id,
        subjectId: r.subject_id,
        occurredAt: r.occurred_at,
        payload: JSON.parse(r.payload) as Record<string, unknown>,
      };
      if (await keep(event)) events.push(event);
    }
    if (events.length === 0) return 0;
    return this.tx(async (trx) => {
      const now = nowIso(this.clock);
      for (let i = 0; i < events.length; i += 200) {
        const chunk = events.slice(i, i + 200);
        await trx
          .insertInto('webhook_deliveries')
          .values(chunk.map((e) => deliveryValues(e, endpoint.id, now)))
          .onConflict((oc) =>
            oc.columns(['endpoint_id', 'message_id']).doUpdateSet({ status: 'PENDING', next_attempt_at: now, locked_until: null, updated_at: now }),
          )
          .execute();
      }
      return events.length;
    });
  }

  // --- Inbound ---------------------------------------------------------------------------------

  async createInbound(tenantId: string, provider: InboundProvider, name: string, request?: IdempotentRequest): Promise<InboundIntegrationRow> {
    return this.idempotency.run(request, (once) =>
      this.tx((trx) =>
        once(
          trx,
          this.clock(),
          async () => {
            const row = await trx
              .insertInto('inbound_integrations')
              .values({ id: newId(), tenant_id: tenantId, provider, name, secret: newInboundSecret(provider), created_at: nowIso(this.clock) })
              .returningAll()
              .executeTakeFirstOrThrow();
            return decodeInbound(row);
          },
          {
            save: (r) => r.id,
            load: async (saved) => {
              const row = await trx.selectFrom('inbound_integrations').selectAll().where('id', '=', String(saved)).executeTakeFirst();
              if (!row) throw new Error(`the inbound integration an Idempotency-Key created (${String(saved)}) no longer exists`);
              return decodeInbound(row);
            },
          },
        ),
      ),
    );
  }

  async listInbound(tenantId: string): Promise<InboundIntegrationRow[]> {
    const rows = await this.db.selectFrom('inbound_integrations').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at', 'desc').execute();
    return rows.map(decodeInbound);
  }

  /** By id alone: an inbound request proves its tenant with the integration's secret, not a token. */
  async inboundById(id: string): Promise<InboundIntegrationRow | null> {
    const row = await this.db.selectFrom('inbound_integrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? decodeInbound(row) : null;
  }

  async deleteInbound(tenantId: string, id: string): Promise<boolean> {
    return this.tx(async (trx) => {
      const r = await trx.deleteFrom('inbound_integrations').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      await trx.deleteFrom('inbound_receipts').where('integration_id', '=', id).execute();
      return Number(r.numDeletedRows) > 0;
    });
  }

  /**
   * Records a verified inbound delivery and publishes it (an event of this subgraph's outbox, so
   * triggers and endpoints get it like any other); false when its delivery id was seen before.
   */
  async receiveInbound(integration: InboundIntegrationRow, deliveryId: string, event: string, body: unknown): Promise<boolean> {
    try {
      return await this.tx(async (trx, emit) => {
        const now = nowIso(this.clock);
        const r = await trx
          .insertInto('inbound_receipts')
          .values({ integration_id: integration.id, delivery_id: deliveryId, received_at: now })
          .onConflict((oc) => oc.columns(['integration_id', 'delivery_id']).doNothing())
          .executeTakeFirst();
        if (Number(r.numInsertedOrUpdatedRows ?? 0) === 0) return false;
        emit({
          type: INBOUND_EVENT_TYPE[integration.provider],
          tenantId: integration.tenantId,
          subjectId: integration.id,
          occurredAt: now,
          payload: { integrationId: integration.id, provider: integration.provider, event, deliveryId, body },
        });
        return true;
      });
    } catch (err) {
      // Two replicas receiving the same delivery at once: the unique key refused the second.
      if (/unique|duplicate/i.test(String((err as Error).message))) return false;
      throw err;
    }
  }

  /** Delivery ids older than the replay window are forgotten (a sender's timestamp check covers them). */
  async pruneReceipts(olderThanMs: number): Promise<number> {
    const cutoff = new Date(this.clock() - olderThanMs).toISOString();
    const r = await this.database.transaction((trx) => trx.deleteFrom('inbound_receipts').where('received_at', '<', cutoff).executeTakeFirst());
    return Number(r.numDeletedRows);
  }

  // --- Triggers --------------------------------------------------------------------------------

  async createTrigger(tenantId: string, draft: TriggerDraft, request?: IdempotentRequest): Promise<TriggerRow> {
    return this.idempotency.run(request, (once) =>
      this.tx((trx) =>
        once(
          trx,
          this.clock(),
          async () => {
            const now = nowIso(this.clock);
            const row = await trx
              .insertInto('triggers')
              .values({
                id: newId(),
                tenant_id: tenantId,
                name: draft.name,
                event_type: draft.eventType,
                filter: draft.filter,
                action: draft.action,
                action_config: JSON.stringify(draft.actionConfig),
                enabled: draft.enabled ? 1 : 0,
                created_at: now,
                updated_at: now,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            return decodeTrigger(row);
          },
          {
            save: (r) => r.id,
            load: async (saved) => {
              const row = await trx.selectFrom('triggers').selectAll().where('id', '=', String(saved)).executeTakeFirst();
              if (!row) throw new Error(`the trigger an Idempotency-Key created (${String(saved)}) no longer exists`);
              return decodeTrigger(row);
            },
          },
        ),
      ),
    );
  }

  async getTrigger(tenantId: string, id: string): Promise<TriggerRow | null> {
    const row = await this.db.selectFrom('triggers').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeTrigger(row) : null;
  }

  async listTriggers(tenantId: string, page: PageQuery): Promise<Connection<TriggerRow>> {
    let q = this.db.selectFrom('triggers').selectAll().where('tenant_id', '=', tenantId);
    const after = page.after;
    if (after) q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await this.db
      .selectFrom('triggers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decodeTrigger), page, Number(n));
  }

  async enabledTriggers(tenantId: string): Promise<TriggerRow[]> {
    const rows = await this.db.selectFrom('triggers').selectAll().where('tenant_id', '=', tenantId).where('enabled', '=', 1).execute();
    return rows.map(decodeTrigger);
  }

  async setTriggerEnabled(tenantId: string, id: string, enabled: boolean): Promise<TriggerRow> {
    return this.tx(async (trx) => {
      const row = await trx
        .updateTable('triggers')
        .set({ enabled: enabled ? 1 : 0, updated_at: nowIso(this.clock) })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound('Trigger', id);
      return decodeTrigger(row);
    });
  }

  async deleteTrigger(tenantId: string, id: string): Promise<boolean> {
    return this.tx(async (trx) => {
      const r = await trx.deleteFrom('triggers').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      await trx.deleteFrom('trigger_runs').where('trigger_id', '=', id).execute();
      return Number(r.numDeletedRows) > 0;
    });
  }

  async listRuns(tenantId: string, triggerId: string, page: PageQuery): Promise<Connection<TriggerRunRow>> {
    let q = this.db.selectFrom('trigger_runs').selectAll().where('tenant_id', '=', tenantId).where('trigger_id', '=', triggerId);
    const after = page.after;
    if (after) q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await this.db
      .selectFrom('trigger_runs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('trigger_id', '=', triggerId)
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decodeRun), page, Number(n));
  }

  /**
   * Takes up to `limit` PENDING runs and marks them RUNNING in a committed write before any action
   * starts: a run whose process dies mid-action is never started again (at most once).
   */
  async claimRuns(limit: number): Promise<(TriggerRunRow & { trigger: TriggerRow })[]> {
    return this.database.transaction(async (trx) => {
      let q = trx.selectFrom('trigger_runs').select('id').where('status', '=', 'PENDING').orderBy('created_at').limit(limit);
      if (this.database.dialect === 'postgres') q = q.forUpdate().skipLocked();
      const ids = (await q.execute()).map((r) => r.id);
      if (ids.length === 0) return [];
      const now = nowIso(this.clock);
      const runs = await trx.updateTable('trigger_runs').set({ status: 'RUNNING', updated_at: now }).where('id', 'in', ids).returningAll().execute();
      const triggers = await trx
        .selectFrom('triggers')
        .selectAll()
        .where('id', 'in', [...new Set(runs.map((r) => r.trigger_id))])
        .execute();
      const byId = new Map(triggers.map((t) => [t.id, decodeTrigger(t)]));
      return runs.flatMap((r) => {
        const trigger = byId.get(r.trigger_id);
        return trigger ? [{ ...decodeRun(r), trigger }] : [];
      });
    });
  }

  async finishRun(id: string, outcome: { status: 'SUCCEEDED' | 'FAILED'; result?: unknown; error?: string }): Promise<void> {
    await this.database.transaction((trx) =>
      trx
        .updateTable('trigger_runs')
        .set({
          status: outcome.status,
          result: outcome.result === undefined ? null : JSON.stringify(outcome.result),
          error: outcome.error ?? null,
          updated_at: nowIso(this.clock),
        })
        .where('id', '=', id)
        .execute(),
    );
  }

  /**
   * Runs left RUNNING by a process that died: FAILED, never started again. SQLite (one process per
   * file) passes no age at start: every RUNNING run is such a one. PostgreSQL replicas pass an age
   * no action takes: a run RUNNING longer belongs to a replica that died.
   */
  async failInterruptedRuns(olderThanMs = 0): Promise<number> {
    const cutoff = new Date(this.clock() - olderThanMs).toISOString();
    const r = await this.database.transaction((trx) =>
      trx
        .updateTable('trigger_runs')
        .set({ status: 'FAILED', error: 'interrupted by a restart; not run again (a trigger runs at most once per event)', updated_at: nowIso(this.clock) })
        .where('status', '=', 'RUNNING')
        .where('updated_at', '<=', cutoff)
        .executeTakeFirst(),
    );
    return Number(r.numUpdatedRows);
  }

  /**
   * Deletes finished deliveries (SUCCEEDED, DEAD) with their attempts, events no pending delivery
   * needs, finished trigger runs, and inbound receipts, older than the retention; how many deliveries.
   */
  async pruneHistory(retentionMs: number, limit = 500): Promise<number> {
    const cutoff = new Date(this.clock() - retentionMs).toISOString();
    return this.database.transaction(async (trx) => {
      const ids = (
        await trx
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('status', 'in', ['SUCCEEDED', 'DEAD'])
          .where('updated_at', '<', cutoff)
          .limit(limit)
          .execute()
      ).map((r) => r.id);
      if (ids.length > 0) {
        await trx.deleteFrom('webhook_attempts').where('delivery_id', 'in', ids).execute();
        await trx.deleteFrom('webhook_deliveries').where('id', 'in', ids).execute();
      }
      await trx.deleteFrom('trigger_runs').where('status', 'in', ['SUCCEEDED', 'FAILED']).where('updated_at', '<', cutoff).execute();
      // Events kept for replays and pending trigger runs; past the retention only replays would read them.
      await trx
        .deleteFrom('integration_events')
        .where('received_at', '<', cutoff)
        .where((eb) =>
          eb.not(eb.exists(eb.selectFrom('trigger_runs').select('trigger_runs.id').whereRef('trigger_runs.event_id', '=', 'integration_events.id'))),
        )
        .execute();
      return ids.length;
    });
  }

  /** Counts by status, for tests and the bench. */
  async deliveryCounts(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .select(['status', sql<number>`count(*)`.as('n')])
      .groupBy('status')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }
}

function deliveryValues(event: Pick<DomainEvent, 'id' | 'type' | 'occurredAt' | 'payload' | 'subjectId' | 'tenantId'>, endpointId: string, now: string) {
  return {
    id: newId(),
    tenant_id: event.tenantId,
    endpoint_id: endpointId,
    message_id: event.id,
    event_type: event.type,
    payload: messageBody(event),
    status: 'PENDING' as const,
    attempt_count: 0,
    next_attempt_at: now,
    locked_until: null,
    created_at: now,
    updated_at: now,
  };
}

function emitDelivery(emit: Emit, d: WebhookDeliveryRow, occurredAt: string): void {
  emit({
    type: WEBHOOK_DELIVERY_UPDATED,
    tenantId: d.tenantId,
    subjectId: d.id,
    occurredAt,
    payload: { deliveryId: d.id, endpointId: d.endpointId, status: d.status, attemptCount: d.attemptCount } satisfies DeliveryEventPayload,
  });
}

function decodeEndpoint(r: Selectable<IntegrationsDB['webhook_endpoints']>): WebhookEndpointRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    url: r.url,
    description: r.description,
    eventTypes: JSON.parse(r.event_types) as string[],
    filter: r.filter,
    enabled: Number(r.enabled) === 1,
    disabledReason: r.disabled_reason,
    rateLimitPerSecond: r.rate_limit_per_second === null ? null : Number(r.rate_limit_per_second),
    failingSince: r.failing_since,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function decodeDelivery(r: Selectable<IntegrationsDB['webhook_deliveries']>): WebhookDeliveryRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    endpointId: r.endpoint_id,
    messageId: r.message_id,
    eventType: r.event_type,
    status: r.status,
    payload: JSON.parse(r.payload) as unknown,
    body: r.payload,
    attemptCount: Number(r.attempt_count),
    nextAttemptAt: r.status === 'PENDING' ? r.next_attempt_at : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function decodeInbound(r: Selectable<IntegrationsDB['inbound_integrations']>): InboundIntegrationRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    provider: r.provider,
    name: r.name,
    hookPath: hookPath(r.provider, r.id),
    secret: r.secret,
    createdAt: r.created_at,
  };
}

function decodeTrigger(r: Selectable<IntegrationsDB['triggers']>): TriggerRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    eventType: r.event_type,
    filter: r.filter,
    action: r.action,
    actionConfig: JSON.parse(r.action_config) as Record<string, unknown>,
    enabled: Number(r.enabled) === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function decodeRun(r: Selectable<IntegrationsDB['trigger_runs']>): TriggerRunRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    triggerId: r.trigger_id,
    eventId: r.event_id,
    eventType: r.event_type,
    status: r.status,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
