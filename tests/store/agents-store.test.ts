import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DomainEvent } from '../../runtime/events.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import {
  AgentHeartbeat,
  AgentRegistered,
  AgentStatusChanged,
  AgentUpdated,
  normaliseFilter,
  normaliseRegistration,
  type AgentDraft,
  type AgentFilterInput,
  type RegisterInput,
} from '../../subgraphs/agents/domain.ts';
import { migrations } from '../../subgraphs/agents/migrations.ts';
import { AgentStore, type AgentRow, type AgentsDB } from '../../subgraphs/agents/store.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';

const draft = (input: Partial<RegisterInput> = {}): AgentDraft => normaliseRegistration({ name: 'Agent', ...input });

describe.each(backends)('agents store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<AgentsDB>;
    beforeAll(async () => {
      t = await openTestDatabase<AgentsDB>(backend, 'agents', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    // Every test works in its own tenant: counts and pages see only that test's agents.
    function setup() {
      const clock = manualClock();
      const store = new AgentStore(t.database, t.bus, t.logger, clock.now);
      return { clock, store, tenant: `tenant-${randomUUID()}` };
    }

    const list = (store: AgentStore, tenant: string, filter: AgentFilterInput = {}, first = 100, after: string | null = null) =>
      store.list(tenant, normaliseFilter(filter), pageRequest({ first, after }));

    it('registers an agent and reads it back', async () => {
      const { store, tenant } = setup();
      const created = await store.register(
        tenant,
        draft({
          name: 'Summariser',
          description: 'Summarises documents',
          agentVersion: '1.4.2',
          endpointUrl: 'https://agents.example.com/sum',
          provider: { organization: 'Acme', url: 'https://acme.example.com' },
          capabilities: { streaming: true },
          skills: [{ id: 'sum', name: 'Summarise', tags: ['summarise', 'nlp'], examples: ['Summarise this'] }],
          labels: [{ key: 'team', value: 'nlp' }],
          defaultInputModes: ['text/plain'],
          defaultOutputModes: ['text/markdown'],
          heartbeatIntervalSeconds: 10,
        }),
      );
      expect(created).toMatchObject({
        tenantId: tenant,
        name: 'Summariser',
        description: 'Summarises documents',
        agentVersion: '1.4.2',
        endpointUrl: 'https://agents.example.com/sum',
        provider: { organization: 'Acme', url: 'https://acme.example.com' },
        capabilities: { streaming: true, pushNotifications: false },
        labels: [{ key: 'team', value: 'nlp' }],
        defaultInputModes: ['text/plain'],
        defaultOutputModes: ['text/markdown'],
        status: 'REGISTERED',
        heartbeatIntervalSeconds: 10,
        lastHeartbeatAt: null,
        card: null,
        createdAt: '2026-03-01T12:00:00.000Z',
        updatedAt: '2026-03-01T12:00:00.000Z',
        version: 1,
      });
      expect(created.skills).toEqual([
        { id: 'sum', name: 'Summarise', description: null, tags: ['summarise', 'nlp'], examples: ['Summarise this'], inputModes: [], outputModes: [] },
      ]);
      expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(await store.get(tenant, created.id)).toEqual(created);
      expect(await store.get(tenant, randomUUID())).toBeNull();
    });

    it('keeps the A2A card as given', async () => {
      const { store, tenant } = setup();
      const card = { name: 'X', url: 'https://x.example.com', extra: { nested: [1, 'two', null] } };
      const created = await store.register(tenant, { ...draft(), card });
      expect((await store.get(tenant, created.id))?.card).toEqual(card);
    });

    it('updates the given fields, bumps the version and re-indexes skills and labels', async () => {
      const { clock, store, tenant } = setup();
      const a = await store.register(
        tenant,
        draft({ name: 'Old', description: 'keep me', skills: [{ id: 's', name: 'S', tags: ['old-tag'] }], labels: [{ key: 'env', value: 'dev' }] }),
      );
      clock.advance(1000);
      const b = await store.update(tenant, a.id, {
        name: 'New',
        skills: [{ id: 't', name: 'T', description: null, tags: ['new-tag'], examples: [], inputModes: [], outputModes: [] }],
        labels: [{ key: 'env', value: 'prod' }],
      });
      expect(b).toMatchObject({ name: 'New', description: 'keep me', version: 2, createdAt: a.createdAt, updatedAt: '2026-03-01T12:00:01.000Z' });
      expect(await store.get(tenant, a.id)).toEqual(b);
      expect((await list(store, tenant, { skillTag: 'old-tag' })).totalCount).toBe(0);
      expect((await list(store, tenant, { skillTag: 'new-tag' })).nodes.map((n) => n.id)).toEqual([a.id]);
      expect((await list(store, tenant, { label: { key: 'env', value: 'dev' } })).totalCount).toBe(0);
      expect((await list(store, tenant, { label: { key: 'env', value: 'prod' } })).totalCount).toBe(1);
      // Fields left out of the patch keep their index rows.
      const c = await store.update(tenant, a.id, { description: null });
      expect(c).toMatchObject({ description: null, version: 3 });
      expect((await list(store, tenant, { skillTag: 'new-tag' })).totalCount).toBe(1);
      expect((await list(store, tenant, { label: { key: 'env' } })).totalCount).toBe(1);
    });

    it('walks the lifecycle, bumping the version at each step, and refuses illegal steps without writing', async () => {
      const { store, tenant } = setup();
      const a = await store.register(tenant, draft());
      const steps = [
        ['activate', 'ACTIVE'],
        ['pause', 'PAUSED'],
        ['resume', 'ACTIVE'],
        ['retire', 'RETIRED'],
      ] as const;
      let version = a.version;
      for (const [action, status] of steps) {
        const row = await store.changeStatus(tenant, a.id, action, version);
        expect(row.status).toBe(status);
        expect(row.version).toBe(version + 1);
        version = row.version;
      }
      const err = await rejection(store.changeStatus(tenant, a.id, 'activate'));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'RETIRED', to: 'ACTIVE' });
      expect(await store.get(tenant, a.id)).toMatchObject({ status: 'RETIRED', version });
      expect((await rejection(store.changeStatus(tenant, randomUUID(), 'activate'))).extensions.code).toBe('NOT_FOUND');
    });

    it('records heartbeats without changing version or updatedAt', async () => {
      const { clock, store, tenant } = setup();
      const a = await store.register(tenant, draft());
      clock.advance(5000);
      const b = await store.recordHeartbeat(tenant, a.id);
      expect(b).toMatchObject({ lastHeartbeatAt: '2026-03-01T12:00:05.000Z', version: 1, updatedAt: a.updatedAt });
      expect((await store.get(tenant, a.id))?.lastHeartbeatAt).toBe('2026-03-01T12:00:05.000Z');
      await store.changeStatus(tenant, a.id, 'retire');
      const err = await rejection(store.recordHeartbeat(tenant, a.id));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', status: 'RETIRED' });
      expect((await rejection(store.recordHeartbeat(tenant, randomUUID()))).extensions.code).toBe('NOT_FOUND');
    });

    it('filters by status, skill tag, label (with and without value) and text, all combined', async () => {
      const { store, tenant } = setup();
      const translator = await store.register(
        tenant,
        draft({
          name: 'Translator',
          description: 'Translates ÉCOLE documents',
          skills: [{ id: 'tr', name: 'Translate', tags: ['translate', 'fr'] }],
          labels: [{ key: 'team', value: 'lang' }],
        }),
      );
      const coder = await store.register(
        tenant,
        draft({
          name: 'Code Reviewer 100%',
          skills: [
            { id: 'review', name: 'Review', tags: ['code'] },
            { id: 'fix', name: 'Fix', tags: ['code', 'fr'] },
          ],
          labels: [
            { key: 'team', value: 'dev' },
            { key: 'gpu', value: '' },
          ],
        }),
      );
      const plain = await store.register(tenant, draft({ name: 'Plain_agent' }));
      await store.changeStatus(tenant, coder.id, 'activate');

      const ids = async (filter: AgentFilterInput) => (await list(store, tenant, filter)).nodes.map((n) => n.id).sort();
      const sorted = (...rows: AgentRow[]) => rows.map((r) => r.id).sort();

      expect(await ids({})).toEqual(sorted(translator, coder, plain));
      expect(await ids({ status: 'ACTIVE' })).toEqual(sorted(coder));
      expect(await ids({ status: 'REGISTERED' })).toEqual(sorted(translator, plain));
      expect(await ids({ status: 'PAUSED' })).toEqual([]);
      // One agent with the tag on two skills is listed once.
      expect(await ids({ skillTag: 'fr' })).toEqual(sorted(translator, coder));
      expect(await ids({ skillTag: 'code' })).toEqual(sorted(coder));
      expect(await ids({ skillTag: 'FR' })).toEqual([]);
      expect(await ids({ label: { key: 'team' } })).toEqual(sorted(translator, coder));
      expect(await ids({ label: { key: 'team', value: 'dev' } })).toEqual(sorted(coder));
      expect(await ids({ label: { key: 'gpu' } })).toEqual(sorted(coder));
      expect(await ids({ label: { key: 'gpu', value: '' } })).toEqual(sorted(coder));
      expect(await ids({ label: { key: 'team', value: 'nope' } })).toEqual([]);
      // Case-insensitive over name and description, beyond ASCII, on both databases.
      expect(await ids({ text: 'TRANSLAT' })).toEqual(sorted(translator));
      expect(await ids({ text: 'école' })).toEqual(sorted(translator));
      expect(await ids({ text: 'reviewer' })).toEqual(sorted(coder));
      // LIKE wildcards in the text are literal characters.
      expect(await ids({ text: '100%' })).toEqual(sorted(coder));
      expect(await ids({ text: '%' })).toEqual(sorted(coder));
      expect(await ids({ text: '_' })).toEqual(sorted(plain));
      expect(await ids({ text: 'plain_' })).toEqual(sorted(plain));
      expect(await ids({ status: 'ACTIVE', skillTag: 'fr', label: { key: 'team', value: 'dev' }, text: 'code' })).toEqual(sorted(coder));
      expect(await ids({ status: 'REGISTERED', skillTag: 'code' })).toEqual([]);
    });

    it('pages newest first with cursors, across equal timestamps, with the total on every page', async () => {
      const { clock, store, tenant } = setup();
      const created: AgentRow[] = [];
      for (let i = 0; i < 25; i++) {
        created.push(await store.register(tenant, draft({ name: `agent ${i}`, skills: [{ id: 's', name: 's', tags: i % 2 === 0 ? ['even'] : ['odd'] }] })));
        // Groups of three share a timestamp, so the id must break ties.
        if (i % 3 === 2) clock.advance(1);
      }
      const expected = [...created].sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));

      const seen: string[] = [];
      let after: string | null = null;
      let pages = 0;
      for (;;) {
        const page = await list(store, tenant, {}, 10, after);
        pages += 1;
        expect(page.totalCount).toBe(25);
        expect(page.pageInfo.hasPreviousPage).toBe(after !== null);
        expect(page.edges.map((e) => e.node)).toEqual(page.nodes);
        expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
        expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
        seen.push(...page.nodes.map((n) => n.id));
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      expect(pages).toBe(3);
      expect(seen).toEqual(expected.map((r) => r.id));

      const evens = await list(store, tenant, { skillTag: 'even' }, 5);
      expect(evens.totalCount).toBe(13);
      expect(evens.nodes).toHaveLength(5);
      expect(evens.pageInfo.hasNextPage).toBe(true);
      const rest = await list(store, tenant, { skillTag: 'even' }, 100, evens.pageInfo.endCursor);
      expect(rest.nodes).toHaveLength(8);
      expect(rest.totalCount).toBe(13);
      expect(rest.pageInfo.hasNextPage).toBe(false);
    });

    it('refuses a stale expectedVersion with CONFLICT and the actual version, writing nothing', async () => {
      const { store, tenant } = setup();
      const a = await store.register(tenant, draft({ name: 'A' }));
      await store.update(tenant, a.id, { name: 'B' }, 1);
      const err = await rejection(store.update(tenant, a.id, { name: 'C' }, 1));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
      const status = await rejection(store.changeStatus(tenant, a.id, 'activate', 1));
      expect(status.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
      expect(await store.get(tenant, a.id)).toMatchObject({ name: 'B', status: 'REGISTERED', version: 2 });
    });

    it('lets exactly one of two concurrent writers with the same expectedVersion win', async () => {
      const { store, tenant } = setup();
      const a = await store.register(tenant, draft({ name: 'A' }));
      const results = await Promise.allSettled([store.update(tenant, a.id, { name: 'first' }, 1), store.update(tenant, a.id, { name: 'second' }, 1)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0]!.reason as GraphQLError).extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
      expect((await store.get(tenant, a.id))?.version).toBe(2);
    });

    describe('events', () => {
      const received: DomainEvent[] = [];
      const unsubscribe: (() => Promise<void>)[] = [];
      beforeAll(async () => {
        for (const type of [AgentRegistered, AgentUpdated, AgentStatusChanged, AgentHeartbeat]) {
          unsubscribe.push(await t.bus.subscribe(type, (e) => received.push(e)));
        }
      });
      afterAll(async () => {
        for (const u of unsubscribe) await u();
      });

      /** The events of one tenant, once `count` of them have arrived. */
      async function eventsOf(tenant: string, count: number): Promise<DomainEvent[]> {
        await vi.waitFor(() => expect(received.filter((e) => e.tenantId === tenant).length).toBeGreaterThanOrEqual(count));
        return received.filter((e) => e.tenantId === tenant);
      }

      it('publishes one event per committed write, with the documented payloads', async () => {
        const { clock, store, tenant } = setup();
        const a = await store.register(tenant, draft({ name: 'E', skills: [{ id: 's', name: 's', tags: ['x', 'y'] }] }));
        clock.advance(1000);
        await store.update(tenant, a.id, { name: 'E2' });
        await store.changeStatus(tenant, a.id, 'activate');
        clock.advance(1000);
        await store.recordHeartbeat(tenant, a.id);
        const events = await eventsOf(tenant, 4);
        expect(events.map((e) => e.type)).toEqual([AgentRegistered, AgentUpdated, AgentStatusChanged, AgentHeartbeat]);
        expect(events.every((e) => e.subjectId === a.id)).toBe(true);
        expect(events[0]?.payload).toEqual({ agentId: a.id, name: 'E', status: 'REGISTERED', skillTags: ['x', 'y'] });
        expect(events[1]?.payload).toEqual({ agentId: a.id, version: 2, fields: ['name'], skillTags: ['x', 'y'] });
        expect(events[2]?.payload).toEqual({ agentId: a.id, from: 'REGISTERED', to: 'ACTIVE' });
        expect(events[3]?.payload).toEqual({ agentId: a.id, at: '2026-03-01T12:00:02.000Z' });
        expect(events[3]?.occurredAt).toBe('2026-03-01T12:00:02.000Z');
      });

      it('publishes only after commit: a subscriber reading the store sees the write', async () => {
        const { store, tenant } = setup();
        const seen: (AgentRow | null)[] = [];
        const off = await t.bus.subscribe(AgentRegistered, (e) => {
          if (e.tenantId === tenant) void store.get(tenant, e.subjectId).then((row) => seen.push(row));
        });
        try {
          const a = await store.register(tenant, draft({ name: 'visible' }));
          await vi.waitFor(() => expect(seen).toHaveLength(1));
          expect(seen[0]).toEqual(a);
        } finally {
          await off();
        }
      });

      it('publishes nothing for writes that fail or roll back', async () => {
        const { store, tenant } = setup();
        const a = await store.register(tenant, draft());
        await eventsOf(tenant, 1);
        await rejection(store.update(tenant, a.id, { name: 'x' }, 7));
        await rejection(store.changeStatus(tenant, a.id, 'pause'));
        await rejection(store.update(tenant, randomUUID(), { name: 'x' }));
        // Duplicate label keys pass this hand-made draft but break the labels primary key after the
        // agent row is inserted: the whole registration must roll back.
        const before = (await list(store, tenant)).totalCount;
        const bad: AgentDraft = {
          ...draft({ name: 'rolled back' }),
          labels: [
            { key: 'k', value: '1' },
            { key: 'k', value: '2' },
          ],
        };
        await expect(store.register(tenant, bad)).rejects.toThrow();
        expect((await list(store, tenant)).totalCount).toBe(before);
        // Events are delivered in order: once this one arrives, any from the failures would have too.
        await store.changeStatus(tenant, a.id, 'activate');
        const events = await eventsOf(tenant, 2);
        expect(events.map((e) => e.type)).toEqual([AgentRegistered, AgentStatusChanged]);
      });
    });

    it('scopes every read and write to the tenant', async () => {
      const { store } = setup();
      const tenantA = `a-${randomUUID()}`;
      const tenantB = `b-${randomUUID()}`;
      const a = await store.register(tenantA, draft({ name: 'Mine', skills: [{ id: 's', name: 's', tags: ['shared'] }], labels: [{ key: 'k', value: 'v' }] }));
      expect(await store.get(tenantB, a.id)).toBeNull();
      expect(await store.getMany(tenantB, [a.id])).toEqual([]);
      expect((await list(store, tenantB)).totalCount).toBe(0);
      expect((await list(store, tenantB, { skillTag: 'shared' })).nodes).toEqual([]);
      expect((await list(store, tenantB, { label: { key: 'k' } })).nodes).toEqual([]);
      expect((await list(store, tenantB, { text: 'mine' })).nodes).toEqual([]);
      expect((await rejection(store.update(tenantB, a.id, { name: 'Theirs' }))).extensions.code).toBe('NOT_FOUND');
      expect((await rejection(store.changeStatus(tenantB, a.id, 'retire'))).extensions.code).toBe('NOT_FOUND');
      expect((await rejection(store.recordHeartbeat(tenantB, a.id))).extensions.code).toBe('NOT_FOUND');
      expect(await store.get(tenantA, a.id)).toEqual(a);
      // Another tenant's agent with the same tag does not leak into A's filter either.
      await store.register(tenantB, draft({ skills: [{ id: 's', name: 's', tags: ['shared'] }] }));
      expect((await list(store, tenantA, { skillTag: 'shared' })).nodes.map((n) => n.id)).toEqual([a.id]);
    });

    it('loads many agents in exactly one statement', async () => {
      const { store, tenant } = setup();
      const rows: AgentRow[] = [];
      for (let i = 0; i < 30; i++) rows.push(await store.register(tenant, draft({ name: `m${i}` })));
      const ids = [...rows.map((r) => r.id), randomUUID()];
      const before = t.database.stats.queries;
      const found = await store.getMany(tenant, ids);
      expect(t.database.stats.queries - before).toBe(1);
      expect(found.map((r) => r.id).sort()).toEqual(rows.map((r) => r.id).sort());
      const none = t.database.stats.queries;
      expect(await store.getMany(tenant, [])).toEqual([]);
      expect(t.database.stats.queries).toBe(none);
    });
  });
});
