// The transactional outbox: a subgraph's domain events are written in the transaction of the
// change that caused them, published to the bus after it committed, and published again by a
// relay after a crash, a restart or a failed publish. The same table is the event log that
// subscriptions resume from (runtime/subscriptions.ts). Generic: no domain logic.
//
// Ordering: every event gets a sequence per tenant (per subgraph: each has its own database),
// 1, 2, 3… in commit order, without gaps. The transaction bumps its tenant's counter row at its
// very end, after the change itself, and takes its events' sequences from it:
// - PostgreSQL: the UPDATE locks the counter row until COMMIT, so the next writer of the tenant
//   waits there and reads the committed value: sequences follow commit order, and a rollback
//   gives its numbers back (the bump is rolled back too). The lock is held only from the end of
//   the transaction's work to its COMMIT; transactions of other tenants never wait.
// - SQLite: one writer at a time (group commit runs its writes one after the other, each in a
//   savepoint), so the same bump gives the same guarantees without any lock.
// Hence when sequence N is visible, 1…N−1 are too: "everything after N" is well defined, and a
// consumer that sees N+2 after N knows N+1 committed and can read it here.
// A global sequence (one row for every tenant) would serialise every write of the subgraph;
// a database sequence (SERIAL) would not follow commit order and would leave gaps on rollback.
import { randomUUID } from 'node:crypto';
import { writeSync } from 'node:fs';
import { sql, type Kysely, type Migration, type Transaction } from 'kysely';
import type { Database } from './db.ts';
import type { DomainEvent, EventBus, NewDomainEvent } from './events.ts';
import type { Logger } from './logger.ts';
import { createPeriodicJob, type PeriodicJob } from './periodic-job.ts';
import { tracedPublish } from './event-tracing.ts';
import type { TraceCarrier } from './tracing.ts';

/** The outbox's tables, as kysely sees them (in every subgraph database that has an outbox). */
export interface OutboxTables {
  outbox_events: {
    id: string;
    tenant_id: string;
    sequence: number;
    type: string;
    subject_id: string;
    occurred_at: string;
    /** JSON text. */
    payload: string;
    /** When the writing transaction ran (ISO-8601): the relay leaves young rows to their writer. */
    created_at: string;
    /** Null until the bus accepted the event; retention counts from here. */
    published_at: string | null;
    /** JSON of the writing request's W3C trace context (outboxTraceMigration), or null: a relayed event continues its trace. */
    trace: string | null;
  };
  outbox_sequences: {
    tenant_id: string;
    last_sequence: number;
  };
}

/** The migration that adds the outbox to a subgraph's database (each subgraph names it in its migrations.ts). */
export function outboxMigration(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('outbox_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('sequence', 'bigint', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('occurred_at', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('published_at', 'text')
        .addUniqueConstraint('outbox_events_tenant_sequence_uq', ['tenant_id', 'sequence'])
        .execute();
      // The relay (published_at null, oldest first) and pruning (published_at before a cutoff).
      await db.schema.createIndex('outbox_events_published_idx').on('outbox_events').columns(['published_at', 'created_at']).execute();
      await db.schema
        .createTable('outbox_sequences')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey())
        .addColumn('last_sequence', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('outbox_sequences').execute();
      await db.schema.dropTable('outbox_events').execute();
    },
  };
}

/**
 * The outbox's second migration (each subgraph names it after outboxMigration()): the trace
 * context of the write, so an event the relay publishes after a crash or a failed publish still
 * belongs to the trace of the request that caused it.
 */
export function outboxTraceMigration(): Migration {
  const migration: Migration = {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('outbox_events').addColumn('trace', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('outbox_events').dropColumn('trace').execute();
    },
  };
  traceMigrations.add(migration);
  return migration;
}

const traceMigrations = new WeakSet<Migration>();

/** Whether a subgraph's migrations give its outbox everything it writes (checked at start: runtime/subgraph.ts). */
export function hasOutboxMigrations(migrations: Record<string, Migration>): boolean {
  return Object.values(migrations).some((m) => traceMigrations.has(m));
}

/** Where a transaction's events go (runtime/unit-of-work.ts): written with the change, then handed over after commit. */
export interface TransactionalEvents {
  /** In the transaction, after its work: stores the events, returns them with id and sequence. */
  append<DB>(trx: Transaction<DB>, events: readonly NewDomainEvent[]): Promise<DomainEvent[]>;
  /** After COMMIT; never throws and never waits for the bus. */
  committed(events: readonly DomainEvent[]): void;
}

/** Whether a subscriber may resume after a sequence (runtime/subscriptions.ts). */
export type ResumeCheck = 'ok' | 'expired' | 'future';

/** The retained events of a subgraph, read by its event streams. */
export interface EventLog {
  /** The bus channel every event of the log is published on. */
  readonly channel: string;
  /** The tenant's last committed sequence (0 before its first event). */
  head(tenantId: string): Promise<number>;
  /** Events after `after` (and before `before`), in sequence order, of the given types when given. */
  read(tenantId: string, range: { after: number; before?: number; types?: readonly string[]; limit: number }): Promise<DomainEvent[]>;
  /** 'ok' when every event after `after` is still retained; 'future' past the head. */
  checkResume(tenantId: string, after: number): Promise<ResumeCheck>;
}

export interface OutboxOptions {
  database: Database<unknown>;
  bus: EventBus;
  logger: Logger;
  /** The bus channel (the subgraph's name): one channel carries every event of the subgraph. */
  channel: string;
  /** Published rows are deleted this long after publication (EVENT_RETENTION_SECONDS). */
  retentionSeconds: number;
  /** How often the relay and pruning run (OUTBOX_RELAY_INTERVAL_MS). */
  relayIntervalMs: number;
  /** The relay leaves rows younger than this to the process that wrote them (it publishes and marks them itself). */
  relayGraceMs?: number;
  /** Marks of published rows are written together, at most this long after the first. */
  markDelayMs?: number;
  /** Rows per relay or prune statement. */
  batchSize?: number;
  clock?: () => number;
  /** Tests only (NODE_ENV=test): SIGKILL this process right after committing an event of this type, before publishing it. */
  crashAfterCommitOf?: string | undefined;
}

/** EVENT_RETENTION_SECONDS's default: a day, time enough for a client to come back after a night. */
export const DEFAULT_EVENT_RETENTION_SECONDS = 86_400;

type Row = OutboxTables['outbox_events'];

function toEvent(row: Row): DomainEvent {
  const event: DomainEvent = {
    id: row.id,
    sequence: Number(row.sequence),
    type: row.type,
    tenantId: row.tenant_id,
    subjectId: row.subject_id,
    occurredAt: row.occurred_at,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
  };
  if (row.trace) event.trace = JSON.parse(row.trace) as TraceCarrier;
  return event;
}

// The outbox shares the subgraph's database and transactions, whose kysely type knows only the
// subgraph's own tables; its statements see the same connection through the outbox tables' type.
function outboxView<DB>(db: Kysely<DB> | Transaction<DB>): Kysely<OutboxTables> {
  return db as unknown as Kysely<OutboxTables>;
}

export class Outbox implements TransactionalEvents, EventLog {
  readonly channel: string;
  private readonly database: Database<unknown>;
  private readonly db: Kysely<OutboxTables>;
  private readonly bus: EventBus;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly retentionMs: number;
  private readonly graceMs: number;
  private readonly markDelayMs: number;
  private readonly batchSize: number;
  private readonly crashAfterCommitOf: string | undefined;
  private readonly job: PeriodicJob;
  /** Ids the bus accepted, waiting for their mark. */
  private marks: string[] = [];
  private markTimer: NodeJS.Timeout | undefined;
  private marking: Promise<void> = Promise.resolve();
  private maintaining: Promise<{ relayed: number; pruned: number }> | undefined;
  /** Publishes issued after commit and not settled yet (stop() waits for them). */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(opts: OutboxOptions) {
    this.channel = opts.channel;
    this.database = opts.database;
    this.db = outboxView(opts.database.db);
    this.bus = opts.bus;
    this.logger = opts.logger;
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = opts.retentionSeconds * 1000;
    this.graceMs = opts.relayGraceMs ?? 5000;
    this.markDelayMs = opts.markDelayMs ?? 50;
    this.batchSize = opts.batchSize ?? 500;
    this.crashAfterCommitOf = opts.crashAfterCommitOf;
    this.job = createPeriodicJob({ name: 'outbox relay', intervalMs: opts.relayIntervalMs, run: () => this.maintain(this.graceMs), logger: opts.logger });
  }

  // --- Writing ---------------------------------------------------------------------------------

  async append<DB>(trx: Transaction<DB>, events: readonly NewDomainEvent[]): Promise<DomainEvent[]> {
    if (events.length === 0) return [];
    const db = outboxView(trx);
    const createdAt = new Date(this.clock()).toISOString();
    // Indexes of the events per tenant, in emit order.
    const byTenant = new Map<string, number[]>();
    events.forEach((e, i) => {
      const own = byTenant.get(e.tenantId);
      if (own) own.push(i);
      else byTenant.set(e.tenantId, [i]);
    });
    const sequences: number[] = [];
    // Tenants in a fixed order: two transactions touching the same tenants never deadlock.
    for (const tenantId of [...byTenant.keys()].sort()) {
      const own = byTenant.get(tenantId) ?? [];
      const { last_sequence } = await db
        .insertInto('outbox_sequences')
        .values({ tenant_id: tenantId, last_sequence: own.length })
        .onConflict((oc) => oc.column('tenant_id').doUpdateSet((eb) => ({ last_sequence: eb('outbox_sequences.last_sequence', '+', own.length) })))
        .returning('last_sequence')
        .executeTakeFirstOrThrow();
      const first = Number(last_sequence) - own.length + 1;
      own.forEach((index, i) => {
        sequences[index] = first + i;
      });
    }
    const stored = events.map((e, i): DomainEvent => ({ ...e, id: randomUUID(), sequence: sequences[i] ?? 0 }));
    // One INSERT for all of the transaction's events.
    await db
      .insertInto('outbox_events')
      .values(
        stored.map((e) => ({
          id: e.id,
          tenant_id: e.tenantId,
          sequence: e.sequence,
          type: e.type,
          subject_id: e.subjectId,
          occurred_at: e.occurredAt,
          payload: JSON.stringify(e.payload),
          created_at: createdAt,
          published_at: null,
          trace: e.trace ? JSON.stringify(e.trace) : null,
        })),
      )
      .execute();
    return stored;
  }

  committed(events: readonly DomainEvent[]): void {
    if (this.crashAfterCommitOf !== undefined && events.some((e) => e.type === this.crashAfterCommitOf)) {
      // Written synchronously: pino's buffered line would die with the process.
      writeSync(2, `test hook: killing this process after commit, before publish (${this.crashAfterCommitOf})\n`);
      process.kill(process.pid, 'SIGKILL');
      return;
    }
    // Issued at once, in order (the bus keeps the order of its calls); the write does not wait:
    // a publish that fails leaves its row unpublished, and the relay publishes it later.
    for (const event of events) this.track(this.publishAndMark(event));
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async publishAndMark(event: DomainEvent): Promise<void> {
    try {
      await tracedPublish(event, this.channel, () => this.bus.publish(event, this.channel));
    } catch (err) {
      this.logger.warn({ err, eventType: event.type, sequence: event.sequence }, 'event publish failed after commit; the outbox relay will publish it');
      return;
    }
    this.mark([event.id]);
  }

  /**
   * Marks rows published, in batches: one UPDATE (on SQLite, inside a group commit that other
   * writes share) for every id gathered within markDelayMs, never one write per event. A crash
   * before the mark only means the relay publishes the event again; consumers drop it by id.
   */
  private mark(ids: readonly string[]): void {
    this.marks.push(...ids);
    if (this.marks.length >= this.batchSize) return void this.flushMarks();
    this.markTimer ??= setTimeout(() => void this.flushMarks(), this.markDelayMs);
  }

  private flushMarks(): Promise<void> {
    if (this.markTimer) clearTimeout(this.markTimer);
    this.markTimer = undefined;
    const ids = this.marks;
    this.marks = [];
    if (ids.length === 0) return this.marking;
    const publishedAt = new Date(this.clock()).toISOString();
    this.marking = this.marking.then(async () => {
      try {
        // SQLite: inside the next group commit (no fsync of its own while writes flow).
        // PostgreSQL: one autocommitted statement, no transaction around it.
        if (this.database.dialect === 'sqlite') await this.database.transaction((trx) => this.markQuery(outboxView(trx), ids, publishedAt).execute());
        else await this.markQuery(this.db, ids, publishedAt).execute();
      } catch (err) {
        this.logger.warn({ err, events: ids.length }, 'marking events published failed; the relay will publish them again');
      }
    });
    return this.marking;
  }

  private markQuery(db: Kysely<OutboxTables>, ids: readonly string[], publishedAt: string) {
    // The id list is padded (repeating its last id) to a power of two: a handful of distinct
    // statements instead of one per batch size, which would churn SQLite's statement cache.
    const padded = [...ids];
    const last = ids[ids.length - 1];
    if (last !== undefined) while ((padded.length & (padded.length - 1)) !== 0) padded.push(last);
    return db.updateTable('outbox_events').set({ published_at: publishedAt }).where('id', 'in', padded);
  }

  /** Waits for the publishes in progress and writes their marks now (tests measuring statements; shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await this.flushMarks();
  }

  // --- Relay and retention ---------------------------------------------------------------------

  /**
   * Relays what nobody published (graceMs 0: everything), then prunes. Run at start and by the
   * job; never twice at once in one process (the relay at start may outlast an interval).
   */
  maintain(graceMs: number): Promise<{ relayed: number; pruned: number }> {
    this.maintaining ??= (async () => {
      try {
        const relayed = await this.relay(graceMs);
        const pruned = await this.prune();
        return { relayed, pruned };
      } finally {
        this.maintaining = undefined;
      }
    })();
    return this.maintaining;
  }

  /**
   * Publishes unpublished rows older than graceMs, oldest first per tenant, and marks them. On
   * PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED while they are published: replicas
   * relay disjoint rows. On SQLite (one process per file) they are read, published, then marked
   * in a short write: the group commit is never held while the bus answers.
   */
  async relay(graceMs: number): Promise<number> {
    let total = 0;
    for (;;) {
      const cutoff = new Date(this.clock() - graceMs).toISOString();
      const candidates = (db: Kysely<OutboxTables>) =>
        db
          .selectFrom('outbox_events')
          .selectAll()
          .where('published_at', 'is', null)
          .where('created_at', '<=', cutoff)
          .orderBy('tenant_id')
          .orderBy('sequence')
          .limit(this.batchSize);
      let published: number;
      if (this.database.dialect === 'postgres') {
        published = await this.db.transaction().execute(async (trx) => {
          const rows = await candidates(trx).forUpdate().skipLocked().execute();
          const done = await this.publishRows(rows);
          if (done.length > 0) await this.markQuery(trx, done, new Date(this.clock()).toISOString()).execute();
          return rows.length === done.length ? rows.length : -1;
        });
      } else {
        const rows = await candidates(this.db).execute();
        const done = await this.publishRows(rows);
        if (done.length > 0) {
          const at = new Date(this.clock()).toISOString();
          await this.database.transaction((trx) => this.markQuery(outboxView(trx), done, at).execute());
        }
        published = rows.length === done.length ? rows.length : -1;
      }
      if (published < 0) return total; // the bus failed: try again on the next run
      total += published;
      if (published < this.batchSize) break;
    }
    if (total > 0) this.logger.info({ events: total }, 'outbox relay published events nobody had published');
    return total;
  }

  /** Publishes in order; stops at the first failure. Returns the ids published. */
  private async publishRows(rows: readonly Row[]): Promise<string[]> {
    const done: string[] = [];
    for (const row of rows) {
      try {
        const event = toEvent(row);
        await tracedPublish(event, this.channel, () => this.bus.publish(event, this.channel), true);
      } catch (err) {
        this.logger.warn({ err, pending: rows.length - done.length }, 'outbox relay could not publish; retrying later');
        break;
      }
      done.push(row.id);
    }
    return done;
  }

  /** Deletes rows published more than the retention ago, a batch per short transaction. The counters stay. */
  async prune(): Promise<number> {
    const cutoff = new Date(this.clock() - this.retentionMs).toISOString();
    let total = 0;
    for (;;) {
      const result = await this.database.transaction((trx) => {
        const db = outboxView(trx);
        return db
          .deleteFrom('outbox_events')
          .where('id', 'in', db.selectFrom('outbox_events').select('id').where('published_at', '<', cutoff).limit(this.batchSize))
          .executeTakeFirst();
      });
      const n = Number(result.numDeletedRows);
      total += n;
      if (n < this.batchSize) return total;
    }
  }

  /** Relays everything left unpublished (a crash, a restart), then relays and prunes every interval. */
  start(): void {
    this.job.start();
    this.track(
      this.maintain(0).then(
        () => undefined,
        (err: unknown) => this.logger.error({ err }, 'outbox relay at start failed; the periodic relay retries'),
      ),
    );
  }

  /** Stops the job and waits for publishes and marks in progress. */
  async stop(): Promise<void> {
    await this.job.stop();
    await this.settle();
  }

  // --- The event log ---------------------------------------------------------------------------

  async head(tenantId: string): Promise<number> {
    const row = await this.db.selectFrom('outbox_sequences').select('last_sequence').where('tenant_id', '=', tenantId).executeTakeFirst();
    return row ? Number(row.last_sequence) : 0;
  }

  async read(tenantId: string, range: { after: number; before?: number; types?: readonly string[]; limit: number }): Promise<DomainEvent[]> {
    let query = this.db.selectFrom('outbox_events').selectAll().where('tenant_id', '=', tenantId).where('sequence', '>', range.after);
    if (range.before !== undefined) query = query.where('sequence', '<', range.before);
    if (range.types) query = query.where('type', 'in', [...range.types]);
    const rows = await query.orderBy('sequence').limit(range.limit).execute();
    return rows.map(toEvent);
  }

  async checkResume(tenantId: string, after: number): Promise<ResumeCheck> {
    const head = await this.head(tenantId);
    if (after > head) return 'future';
    if (after === head) return 'ok';
    // Retained iff every sequence in (after, head] is still there: counting them is exact even
    // if pruning left holes (it prunes by publication time, not by sequence).
    const { n } = await this.db
      .selectFrom('outbox_events')
      .select(sql<number>`count(*)`.as('n'))
      .where('tenant_id', '=', tenantId)
      .where('sequence', '>', after)
      .where('sequence', '<=', head)
      .executeTakeFirstOrThrow();
    return Number(n) === head - after ? 'ok' : 'expired';
  }
}
