// The integrations store on SQLite and PostgreSQL: the feed's exactly-once hand-off (events,
// deliveries, trigger runs and the cursor in one transaction), the delivery queue's leases and
// outcomes (retry, dead letter, auto-disable), secret rotation, replay, inbound replay refusal and
// triggers' at-most-once runs; the feed itself over a scripted source.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../runtime/events.ts';
import { normaliseEndpoint, normaliseTrigger } from '../../subgraphs/integrations/domain.ts';
import { EventFeed, type SourceReader } from '../../subgraphs/integrations/feed.ts';
import { migrations } from '../../subgraphs/integrations/migrations.ts';
import { IntegrationsStore, type IntegrationsDB } from '../../subgraphs/integrations/store.ts';
import { backends, openTestDatabase, silentLogger, type TestDatabase } from '../support/databases.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';

function eventOf(tenantId: string, sequence: number, type = 'TaskStateChanged', payload: Record<string, unknown> = { to: 'FAILED' }): DomainEvent {
  return { id: randomUUID(), sequence, type, tenantId, subjectId: randomUUID(), occurredAt: new Date().toISOString(), payload };
}

/** A source whose log the test writes. */
function scriptedSource(name: string): SourceReader & { log: DomainEvent[]; reads: number } {
  const source = {
    name,
    log: [] as DomainEvent[],
    reads: 0,
    async read(tenantId: string, after: number, limit: number) {
      source.reads += 1;
      const mine = source.log.filter((e) => e.tenantId === tenantId);
      const head = mine.at(-1)?.sequence ?? 0;
      return { head, resume: 'ok' as const, events: mine.filter((e) => e.sequence > after).slice(0, limit) };
    },
  };
  return source;
}

describe.each(backends)('integrations store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<IntegrationsDB>;
    beforeAll(async () => {
      t = await openTestDatabase<IntegrationsDB>(backend, 'integrations', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup() {
      const clock = manualClock(Date.now());
      const store = new IntegrationsStore(t.database, t.bus, t.logger, clock.now);
      const tenant = `tenant-${randomUUID()}`;
      const endpoint = async (input: Partial<Parameters<typeof normaliseEndpoint>[0]> = {}) =>
        (await store.createEndpoint(tenant, normaliseEndpoint({ url: 'https://hooks.example.com/x', eventTypes: ['TaskStateChanged'], ...input }))).endpoint;
      return { clock, store, tenant, endpoint };
    }

    it('takes a page in once: a second ingest from the same cursor writes nothing', async () => {
      const { store, tenant, endpoint } = setup();
      const e = await endpoint();
      expect(await store.startCursor('orchestration', tenant, 0)).toBe(true);
      expect(await store.startCursor('orchestration', tenant, 5)).toBe(false);
      const events = [eventOf(tenant, 1), eventOf(tenant, 2)];
      const batch = {
        source: 'orchestration',
        tenantId: tenant,
        fromSequence: 0,
        toSequence: 2,
        events: events.map((event) => ({ event, endpointIds: [e.id], triggerIds: [] })),
      };
      expect(await store.ingest(batch)).toEqual({ deliveries: 2, runs: 0 });
      expect(await store.ingest(batch)).toBe(false);
      expect(await store.cursor('orchestration', tenant)).toBe(2);
      const list = await store.listDeliveries(tenant, e.id, null, { first: 10, limit: 11, after: null });
      expect(list.totalCount).toBe(2);
      expect(list.nodes.map((d) => d.messageId).sort()).toEqual(events.map((x) => x.id).sort());
    });

    it('leases due deliveries: a claimed one is not claimed again until its lease passes', async () => {
      const { store, tenant, endpoint, clock } = setup();
      const e = await endpoint();
      const d = await store.enqueue(tenant, e.id, eventOf(tenant, 1));
      const first = await store.claimDue(1000, 10_000);
      expect(first.map((x) => x.id)).toContain(d.id);
      expect((await store.claimDue(1000, 10_000)).map((x) => x.id)).not.toContain(d.id);
      clock.advance(10_001);
      expect((await store.claimDue(1000, 10_000)).map((x) => x.id)).toContain(d.id);
    });

    it('records attempts: retry, then DEAD; an endpoint failing long enough is disabled', async () => {
      const { store, tenant, endpoint, clock } = setup();
      const e = await endpoint();
      const d = await store.enqueue(tenant, e.id, eventOf(tenant, 1));
      const failed = await store.recordAttempt(d, { statusCode: 500, latencyMs: 12, error: 'HTTP 500', responseExcerpt: 'no', retryInMs: 5000 }, 60_000);
      expect(failed).toMatchObject({ status: 'PENDING', attemptCount: 1, nextAttemptAt: new Date(clock.now() + 5000).toISOString() });
      clock.advance(30_000);
      const dead = await store.recordAttempt(failed, { statusCode: 503, latencyMs: 9, error: 'HTTP 503', responseExcerpt: null, retryInMs: 'dead' }, 60_000);
      expect(dead.status).toBe('DEAD');
      // Failing for 30 s, less than 60 s: still enabled.
      expect((await store.getEndpoint(tenant, e.id))?.enabled).toBe(true);
      clock.advance(40_000);
      await store.retry(tenant, d.id);
      await store.recordAttempt(dead, { statusCode: null, latencyMs: 3, error: 'timed out', responseExcerpt: null, retryInMs: 'dead' }, 60_000);
      expect(await store.getEndpoint(tenant, e.id)).toMatchObject({ enabled: false, disabledReason: expect.stringMatching(/dead-lettered after 3 attempts/) });
      expect((await store.attempts(d.id)).map((a) => [a.attempt, a.statusCode])).toEqual([
        [1, 500],
        [2, 503],
        [3, null],
      ]);
      // Disabled: its deliveries are not taken.
      await store.retry(tenant, d.id);
      expect((await store.claimDue(1000, 1000)).map((x) => x.id)).not.toContain(d.id);
      await store.updateEndpoint(tenant, e.id, { enabled: true });
      expect((await store.claimDue(1000, 1000)).map((x) => x.id)).toContain(d.id);
    });

    it('rotates secrets with an overlap: both sign until it ends, then only the new one', async () => {
      const { store, tenant, clock } = setup();
      const { endpoint, secret } = await store.createEndpoint(tenant, normaliseEndpoint({ url: 'https://a.example.com', eventTypes: ['AgentRegistered'] }));
      const rotated = await store.rotateSecret(tenant, endpoint.id, 60);
      expect(await store.signingSecrets(endpoint.id)).toEqual([rotated.secret, secret]);
      clock.advance(61_000);
      expect(await store.signingSecrets(endpoint.id)).toEqual([rotated.secret]);
      expect((await rejection(store.rotateSecret(tenant, randomUUID(), 0))).extensions.code).toBe('NOT_FOUND');
    });

    it('replays a received range: existing deliveries are due again, with the same message id', async () => {
      const { store, tenant, endpoint, clock } = setup();
      const e = await endpoint({ filter: 'data.to = "FAILED"' });
      await store.startCursor('orchestration', tenant, 0);
      const from = new Date(clock.now()).toISOString();
      const failedEvent = eventOf(tenant, 1);
      const other = eventOf(tenant, 2, 'TaskStateChanged', { to: 'COMPLETED' });
      await store.ingest({
        source: 'orchestration',
        tenantId: tenant,
        fromSequence: 0,
        toSequence: 2,
        events: [
          { event: failedEvent, endpointIds: [e.id], triggerIds: [] },
          { event: other, endpointIds: [], triggerIds: [] },
        ],
      });
      const [d] = (await store.listDeliveries(tenant, e.id, null, { first: 5, limit: 6, after: null })).nodes;
      await store.recordAttempt(d!, { statusCode: 200, latencyMs: 1, error: null, responseExcerpt: null, retryInMs: null }, 1000);
      clock.advance(1000);
      const queued = await store.replay(tenant, e, from, new Date(clock.now()).toISOString(), async (ev) => ev.payload.to === 'FAILED');
      expect(queued).toBe(1);
      const again = (await store.listDeliveries(tenant, e.id, 'PENDING', { first: 5, limit: 6, after: null })).nodes;
      expect(again.map((x) => x.messageId)).toEqual([failedEvent.id]);
    });

    it('refuses an inbound delivery id seen before', async () => {
      const { store, tenant } = setup();
      const integration = await store.createInbound(tenant, 'GITHUB', 'repo');
      expect(integration.hookPath).toBe(`/v1/hooks/github/${integration.id}`);
      expect(await store.receiveInbound(integration, 'd-1', 'push', { ref: 'main' })).toBe(true);
      expect(await store.receiveInbound(integration, 'd-1', 'push', { ref: 'main' })).toBe(false);
      expect(await store.receiveInbound(integration, 'd-2', 'push', {})).toBe(true);
    });

    it('runs a trigger at most once per event, and never again after an interruption', async () => {
      const { store, tenant } = setup();
      const trigger = await store.createTrigger(
        tenant,
        normaliseTrigger({ name: 'on failure', eventType: 'TaskStateChanged', action: { kind: 'SUBMIT_TASK', config: { title: 'Look at {{ subjectId }}' } } }),
      );
      await store.startCursor('orchestration', tenant, 0);
      const event = eventOf(tenant, 1);
      const batch = {
        source: 'orchestration',
        tenantId: tenant,
        fromSequence: 0,
        toSequence: 1,
        events: [{ event, endpointIds: [], triggerIds: [trigger.id] }],
      };
      expect(await store.ingest(batch)).toEqual({ deliveries: 0, runs: 1 });
      // The same event read again after the cursor was reset (another source's copy): still one run.
      await t.database.transaction((trx) => trx.updateTable('event_cursors').set({ last_sequence: 0 }).where('tenant_id', '=', tenant).execute());
      expect(await store.ingest(batch)).toEqual({ deliveries: 0, runs: 0 });
      const claimed = (await store.claimRuns(100)).filter((r) => r.triggerId === trigger.id);
      expect(claimed).toHaveLength(1);
      expect(claimed[0]?.status).toBe('RUNNING');
      expect((await store.claimRuns(100)).filter((r) => r.triggerId === trigger.id)).toHaveLength(0);
      expect(await store.failInterruptedRuns()).toBeGreaterThanOrEqual(1);
      const runs = await store.listRuns(tenant, trigger.id, { first: 5, limit: 6, after: null });
      expect(runs.nodes.map((r) => r.status)).toEqual(['FAILED']);
      expect(runs.nodes[0]?.error).toMatch(/at most once/);
    });

    it('prunes finished history past the retention, keeping what is pending; fails only runs RUNNING longer than asked', async () => {
      const { store, tenant, endpoint, clock } = setup();
      const e = await endpoint();
      const done = await store.enqueue(tenant, e.id, eventOf(tenant, 1));
      await store.recordAttempt(done, { statusCode: 200, latencyMs: 1, error: null, responseExcerpt: null, retryInMs: null }, 1000);
      const pending = await store.enqueue(tenant, e.id, eventOf(tenant, 2));
      clock.advance(10_000);
      expect(await store.pruneHistory(5_000)).toBeGreaterThanOrEqual(1);
      expect(await store.getDelivery(tenant, done.id)).toBeNull();
      expect(await store.attempts(done.id)).toEqual([]);
      expect((await store.getDelivery(tenant, pending.id))?.status).toBe('PENDING');

      const trigger = await store.createTrigger(
        tenant,
        normaliseTrigger({ name: 't', eventType: 'TaskStateChanged', action: { kind: 'SUBMIT_TASK', config: { title: 'x' } } }),
      );
      await store.startCursor('orchestration', tenant, 0);
      await store.ingest({
        source: 'orchestration',
        tenantId: tenant,
        fromSequence: 0,
        toSequence: 1,
        events: [{ event: eventOf(tenant, 1), endpointIds: [], triggerIds: [trigger.id] }],
      });
      expect((await store.claimRuns(100)).some((r) => r.triggerId === trigger.id)).toBe(true);
      clock.advance(1000);
      await store.failInterruptedRuns(60_000);
      expect((await store.listRuns(tenant, trigger.id, { first: 5, limit: 6, after: null })).nodes[0]?.status).toBe('RUNNING');
      clock.advance(60_000);
      await store.failInterruptedRuns(60_000);
      expect((await store.listRuns(tenant, trigger.id, { first: 5, limit: 6, after: null })).nodes[0]?.status).toBe('FAILED');
    });

    it('feeds from a source’s log: starts at its head, then takes each event once, matching types and filters', async () => {
      const { store, tenant, endpoint } = setup();
      const source = scriptedSource('orchestration');
      source.log.push(eventOf(tenant, 1), eventOf(tenant, 2));
      const e = await endpoint({ filter: 'data.to = "FAILED"' });
      const queued: number[] = [];
      const feed = new EventFeed({
        store,
        sources: [source],
        bus: t.bus,
        logger: silentLogger,
        pollMs: 60_000,
        pageSize: 2,
        onQueued: (q) => queued.push(q.deliveries),
      });
      await feed.ensureCursors(tenant);
      expect(await store.cursor('orchestration', tenant)).toBe(2);
      const wanted = [eventOf(tenant, 3), eventOf(tenant, 4), eventOf(tenant, 6)];
      source.log.push(wanted[0]!, eventOf(tenant, 5, 'TaskStateChanged', { to: 'COMPLETED' }), wanted[1]!, eventOf(tenant, 7, 'AgentRegistered'), wanted[2]!);
      // Sequences in order, whatever the test pushed.
      source.log.sort((a, b) => a.sequence - b.sequence);
      wanted[1]!.sequence = 4;
      await feed.pull(source, tenant);
      await feed.pull(source, tenant);
      expect(await store.cursor('orchestration', tenant)).toBe(7);
      const list = await store.listDeliveries(tenant, e.id, null, { first: 10, limit: 11, after: null });
      expect(list.nodes.map((d) => d.messageId).sort()).toEqual(wanted.map((w) => w.id).sort());
      expect(queued.reduce((a, b) => a + b, 0)).toBe(3);
    });
  });
});
