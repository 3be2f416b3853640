// The feed: the platform's events taken into the durable queue after they committed, none lost
// while this subgraph is down. Each source subgraph keeps its events in its outbox (its event
// log, retained EVENT_RETENTION_SECONDS after publication) and serves them at GET /events to
// other subgraphs (runtime/event-log-route.ts). For every tenant with an endpoint or a trigger,
// the feed keeps a cursor per source (the last sequence taken in) in its own database and reads
// the source's log after it: live, woken by the bus as events are published, and every
// pollMs in any case (without Redis, separate processes do not hear each other's bus). A page is
// taken in with its deliveries, its trigger runs and the cursor's move in one transaction, so an
// event is queued exactly once, and after a crash or a restart the feed resumes where the cursor
// stands, from the source's retained events. Its own inbound events come from its own outbox
// the same way.
import { request } from 'undici';
import type { EventBus, DomainEvent } from '../../runtime/events.ts';
import { IDENTITY_HEADER, type IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { EventLog } from '../../runtime/outbox.ts';
import { EVENT_CATALOG, matches, viewOf } from './domain.ts';
import type { IntegrationsStore, IngestBatch } from './store.ts';

interface LogPage {
  head: number;
  resume: 'ok' | 'expired' | 'future';
  events: DomainEvent[];
}

/** Where one source's events are read: another subgraph over HTTP, or this subgraph's own outbox. */
export interface SourceReader {
  name: string;
  read(tenantId: string, after: number, limit: number): Promise<LogPage>;
}

const CATALOG_TYPES = new Set(EVENT_CATALOG.map((e) => e.name));
const OWN_TYPES = EVENT_CATALOG.filter((e) => e.source === 'integrations').map((e) => e.name);

export function localSource(name: string, log: EventLog): SourceReader {
  return {
    name,
    async read(tenantId, after, limit) {
      // The head first: every event up to it is visible (runtime/outbox.ts), so a short page
      // means none of the catalog's types lies between the cursor and the head.
      const head = await log.head(tenantId);
      // Only the catalog's events of this subgraph: never its WebhookDeliveryUpdated.
      const events = await log.read(tenantId, { after, before: head + 1, limit, types: OWN_TYPES });
      return { head, resume: 'ok', events };
    },
  };
}

export function remoteSource(name: string, graphqlUrl: string, identity: IdentityService, timeoutMs = 5000): SourceReader {
  const base = graphqlUrl.replace(/\/graphql\/?$/, '');
  return {
    name,
    async read(tenantId, after, limit) {
      const token = await identity.signIdentity({ kind: 'service', subject: 'subgraph:integrations', tenantId, scopes: [], agentId: null }, name);
      const res = await request(`${base}/events?after=${after}&limit=${limit}`, {
        headers: { [IDENTITY_HEADER]: token },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`the ${name} subgraph's event log answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      return JSON.parse(text) as LogPage;
    },
  };
}

export interface EventFeedOptions {
  store: IntegrationsStore;
  sources: SourceReader[];
  bus: EventBus;
  logger: Logger;
  pollMs: number;
  pageSize?: number;
  /** Called after a page queued deliveries or trigger runs. */
  onQueued: (what: { deliveries: number; runs: number }) => void;
}

export class EventFeed {
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private unsubscribes: Promise<() => Promise<void>>[] = [];
  /** Set by stop(); a feed reads on demand (pull) before start() as well. */
  private stopped = false;
  private readonly pageSize: number;
  /** Logged once per source while it cannot be read. */
  private readonly unreachable = new Set<string>();

  constructor(private readonly o: EventFeedOptions) {
    this.pageSize = o.pageSize ?? 500;
  }

  start(): void {
    this.stopped = false;
    // Live: a published event wakes its tenant's reader of that source. Each source publishes
    // on a channel named after it (runtime/outbox.ts).
    for (const source of this.o.sources) {
      const sub = this.o.bus.subscribe(source.name, (event) => {
        if (CATALOG_TYPES.has(event.type)) this.wake(source, event.tenantId);
      });
      sub.catch((err: unknown) => this.o.logger.warn({ err, source: source.name }, 'subscribing to a source’s events failed; polling only'));
      this.unsubscribes.push(sub);
    }
    this.schedulePoll(0);
  }

  private schedulePoll(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.polling = this.pollAll().finally(() => {
        this.polling = undefined;
        this.schedulePoll(this.o.pollMs);
      });
    }, ms);
    this.timer.unref?.();
  }

  /** Reads every source of every active tenant once (the periodic catch-up). */
  async pollAll(): Promise<void> {
    let tenants: string[];
    try {
      tenants = await this.o.store.activeTenants();
    } catch (err) {
      this.o.logger.error({ err }, 'listing the tenants to feed failed');
      return;
    }
    await Promise.all(tenants.flatMap((t) => this.o.sources.map((s) => this.pull(s, t))));
  }

  /** Starts the tenant's cursors at each source's head (a new endpoint or trigger hears from now on). */
  async ensureCursors(tenantId: string): Promise<void> {
    await Promise.all(
      this.o.sources.map(async (source) => {
        try {
          if ((await this.o.store.cursor(source.name, tenantId)) !== null) return;
          const page = await source.read(tenantId, 0, 1);
          await this.o.store.startCursor(source.name, tenantId, page.head);
        } catch (err) {
          this.o.logger.warn(
            { err, source: source.name, tenantId },
            'could not start a cursor now; the feed starts it at the source’s head when it can read it',
          );
        }
      }),
    );
  }

  private wake(source: SourceReader, tenantId: string): void {
    if (this.stopped) return;
    void this.pull(source, tenantId);
  }

  /** One reader per (source, tenant) at a time; a wake during a read reads again after it. */
  pull(source: SourceReader, tenantId: string): Promise<void> {
    const key = `${source.name}\u0000${tenantId}`;
    const current = this.running.get(key);
    if (current) {
      this.dirty.add(key);
      return current;
    }
    const run = (async () => {
      try {
        do {
          this.dirty.delete(key);
          await this.drain(source, tenantId);
        } while (this.dirty.has(key) && !this.stopped);
      } catch (err) {
        if (!this.unreachable.has(source.name)) {
          this.unreachable.add(source.name);
          this.o.logger.warn({ err, source: source.name, tenantId }, 'reading a source’s event log failed; retrying every poll');
        }
      } finally {
        this.running.delete(key);
      }
    })();
    this.running.set(key, run);
    return run;
  }

  private async drain(source: SourceReader, tenantId: string): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      let cursor = await this.o.store.cursor(source.name, tenantId);
      if (cursor === null) {
        const first = await source.read(tenantId, 0, 1);
        await this.o.store.startCursor(source.name, tenantId, first.head);
        cursor = await this.o.store.cursor(source.name, tenantId);
        if (cursor === null) return;
      }
      const page = await source.read(tenantId, cursor, this.pageSize);
      this.unreachable.delete(source.name);
      if (page.resume === 'expired') {
        this.o.logger.error(
          { source: source.name, tenantId, after: cursor },
          'some events after the cursor were pruned from the source before they were taken in (integrations was down longer than the source’s EVENT_RETENTION_SECONDS); continuing with the oldest retained',
        );
      }
      if (page.resume === 'future') {
        // The source's database was reset: start again at its head.
        this.o.logger.warn({ source: source.name, tenantId, cursor, head: page.head }, 'the cursor is past the source’s head; restarting at the head');
      }
      // A short page read everything up to the head (read before the events): the cursor moves
      // there even past events of no interest, so they are not read again.
      const lastEvent = page.events.at(-1)?.sequence ?? cursor;
      const last =
        page.resume === 'future' && page.events.length === 0 ? page.head : page.events.length < this.pageSize ? Math.max(lastEvent, page.head) : lastEvent;
      if (last === cursor) return;
      const batch = await this.match(source.name, tenantId, cursor, last, page.events);
      const taken = await this.o.store.ingest(batch);
      if (taken && (taken.deliveries > 0 || taken.runs > 0)) this.o.onQueued(taken);
      if (page.events.length < this.pageSize) return;
    }
  }

  private async match(source: string, tenantId: string, from: number, to: number, events: DomainEvent[]): Promise<IngestBatch> {
    const [endpoints, triggers] = await Promise.all([this.o.store.enabledEndpoints(tenantId), this.o.store.enabledTriggers(tenantId)]);
    const out: IngestBatch['events'] = [];
    for (const event of events) {
      const view = viewOf(event);
      const endpointIds: string[] = [];
      for (const e of endpoints) if (e.eventTypes.includes(event.type) && (await matches(e.filter, view))) endpointIds.push(e.id);
      const triggerIds: string[] = [];
      for (const t of triggers) if (t.eventType === event.type && (await matches(t.filter, view))) triggerIds.push(t.id);
      out.push({ event, endpointIds, triggerIds });
    }
    return { source, tenantId, fromSequence: from, toSequence: to, events: out };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    await Promise.allSettled([...this.running.values()]);
    for (const sub of this.unsubscribes) {
      const off = await sub.catch(() => undefined);
      await off?.();
    }
  }
}
