import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../runtime/events.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { applySettings, normaliseNeed, normalisePeer, normaliseService, type AgentProfile } from '../../subgraphs/discovery/domain.ts';
import { rank } from '../../subgraphs/discovery/matching.ts';
import { migrations } from '../../subgraphs/discovery/migrations.ts';
import { DiscoveryStore, type DiscoveryDB } from '../../subgraphs/discovery/store.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';

function profile(tenantId: string, name: string, tags: string[], over: Partial<AgentProfile> = {}): AgentProfile {
  return {
    tenantId,
    agentId: randomUUID(),
    name,
    description: `${name} agent`,
    agentVersion: '1.0.0',
    endpointUrl: null,
    provider: null,
    capabilities: { streaming: false, pushNotifications: false },
    skills: [{ id: tags[0] ?? 'none', name: name, description: null, tags, examples: [], inputModes: [], outputModes: [] }],
    labels: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    status: 'ACTIVE',
    heartbeatIntervalSeconds: 30,
    lastHeartbeatAt: null,
    syncedAt: '2026-03-01T12:00:00.000Z',
    ...over,
  };
}

describe.each(backends)('discovery store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<DiscoveryDB>;
    beforeAll(async () => {
      t = await openTestDatabase<DiscoveryDB>(backend, 'discovery', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup() {
      const clock = manualClock();
      const store = new DiscoveryStore(t.database, t.bus, t.logger, clock.now, undefined, 0);
      return { clock, store, tenant: `tenant-${randomUUID()}` };
    }

    it('lists public agents to everyone and private ones only to their tenant', async () => {
      const { store, tenant } = setup();
      const pub = profile(tenant, 'Aardvark Public', ['review']);
      const priv = profile(tenant, 'Aardvark Private', ['translate']);
      for (const p of [pub, priv]) await store.upsertProfile(p);
      await store.setListing(tenant, pub.agentId, (s) => applySettings(s, { public: true }), null);
      await store.setListing(tenant, priv.agentId, (s) => applySettings(s, { public: false }), null);
      const mine = (await store.catalog(tenant)).map((e) => e.profile.agentId);
      expect(mine).toEqual(expect.arrayContaining([pub.agentId, priv.agentId]));
      const anyone = (await store.catalog(null)).map((e) => e.profile.agentId);
      expect(anyone).toContain(pub.agentId);
      expect(anyone).not.toContain(priv.agentId);
      const other = (await store.catalog(`tenant-${randomUUID()}`)).map((e) => e.profile.agentId);
      expect(other).not.toContain(priv.agentId);
      expect(await store.publicListing(priv.agentId)).toBeNull();
      expect((await store.publicListing(pub.agentId))?.profile?.name).toBe('Aardvark Public');
    });

    it('versions settings and refuses a stale expectedVersion', async () => {
      const { store, tenant } = setup();
      const p = profile(tenant, 'Versioned', ['x']);
      await store.upsertProfile(p);
      expect((await store.listing(tenant, p.agentId))?.version).toBe(0);
      const first = await store.setListing(tenant, p.agentId, (s) => applySettings(s, { public: true, documentationUrl: 'https://docs.example.com' }), 0);
      expect(first).toMatchObject({ version: 1, public: true, documentationUrl: 'https://docs.example.com' });
      const second = await store.setListing(tenant, p.agentId, (s) => applySettings(s, { iconUrl: 'https://icons.example.com/a.png' }), 1);
      expect(second).toMatchObject({ version: 2, public: true, documentationUrl: 'https://docs.example.com', iconUrl: 'https://icons.example.com/a.png' });
      const err = await rejection(store.setListing(tenant, p.agentId, (s) => s, 1));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, actualVersion: 2 });
    });

    it('rebuilds the match index only when a profile changed, not on heartbeats', async () => {
      const { store, tenant, clock } = setup();
      const p = profile(tenant, 'Indexed', ['index']);
      await store.upsertProfile(p);
      const first = (await store.matchState(tenant)).index;
      await store.recordHeartbeat(tenant, p.agentId, '2026-03-01T12:00:10.000Z');
      await store.upsertProfile({ ...p, syncedAt: '2026-03-01T12:05:00.000Z', lastHeartbeatAt: '2026-03-01T12:00:10.000Z' });
      expect((await store.matchState(tenant)).index).toBe(first);
      const other = profile(tenant, 'Untouched', ['index']);
      await store.upsertProfile(other);
      const withOther = (await store.matchState(tenant)).index;
      expect(withOther.agents).toHaveLength(2);
      // Past the overlap window: only what changes from now on is read again.
      clock.advance(10_000);
      expect((await store.matchState(tenant)).index).toBe(withOther);
      await store.upsertProfile({ ...p, description: 'now different' });
      const patched = (await store.matchState(tenant)).index;
      expect(patched).not.toBe(withOther);
      // Patched, not rebuilt: the unchanged agent's entry is the same object, the changed one is new.
      expect(patched.agents.find((a) => a.id === other.agentId)).toBe(withOther.agents.find((a) => a.id === other.agentId));
      expect(patched.agents.find((a) => a.id === p.agentId)?.tf.has('different')).toBe(true);
      expect(patched.df.get('different')).toBe(1);
      expect((await store.liveState(tenant)).get(p.agentId)?.lastHeartbeatAt).toBe('2026-03-01T12:00:10.000Z');
    });

    it('ranks by load and success from task states (fixed data)', async () => {
      const { store, tenant, clock } = setup();
      const now = new Date(clock.now()).toISOString();
      const busy = profile(tenant, 'Busy', ['review'], { lastHeartbeatAt: now });
      const idle = profile(tenant, 'Idle', ['review'], { lastHeartbeatAt: now });
      for (const p of [busy, idle]) await store.upsertProfile(p);
      await store.recordTaskState(tenant, randomUUID(), busy.agentId, 'WORKING', now);
      await store.recordTaskState(tenant, randomUUID(), busy.agentId, 'ASSIGNED', now);
      const done = randomUUID();
      await store.recordTaskState(tenant, done, idle.agentId, 'WORKING', now);
      await store.recordTaskState(tenant, done, null, 'COMPLETED', new Date(clock.now() + 1000).toISOString());
      const live = await store.liveState(tenant);
      expect(live.get(busy.agentId)).toMatchObject({ activeTasks: 2, completed: 0 });
      expect(live.get(idle.agentId)).toMatchObject({ activeTasks: 0, completed: 1 });
      const ranked = rank((await store.matchState(tenant)).index, normaliseNeed({ skills: ['review'] }), (id) => live.get(id), clock.now());
      expect(ranked.map((m) => m.name)).toEqual(['Idle', 'Busy']);
      expect(ranked[0]?.parts).toEqual({ skills: 1, text: 0, health: 1, load: 1, success: 0.6667 });
      expect(ranked[1]?.parts).toEqual({ skills: 1, text: 0, health: 1, load: 0.3333, success: 0.5 });
      expect(
        rank((await store.matchState(tenant)).index, normaliseNeed({ skills: ['review'], maxActiveTasks: 1 }), (id) => live.get(id), clock.now()),
      ).toHaveLength(1);
    });

    it('marks a TTL service DOWN when its heartbeats stop and UP on the next, with events', async () => {
      const { store, tenant, clock } = setup();
      const events: DomainEvent[] = [];
      const unsubscribe = await t.bus.subscribe('ServiceStatusChanged', (e) => {
        if (e.tenantId === tenant) events.push(e);
      });
      const s = await store.registerService(
        tenant,
        normaliseService({ name: 'Model', kind: 'MODEL_ENDPOINT', endpoint: 'https://models.example.com/v1', ttlSeconds: 10 }),
      );
      expect(s).toMatchObject({ status: 'UP', mode: 'TTL', ttlSeconds: 10 });
      expect((await store.dueServices(100)).map((x) => x.id)).not.toContain(s.id);
      clock.advance(11_000);
      const due = (await store.dueServices(100)).find((x) => x.id === s.id);
      expect(due).toBeDefined();
      expect(await store.recordCheck(due!, 'DOWN', 'no heartbeat within 10 s')).toMatchObject({ status: 'DOWN', statusReason: 'no heartbeat within 10 s' });
      expect(await store.heartbeatService(tenant, s.id)).toMatchObject({ status: 'UP', statusReason: null });
      await new Promise((resolve) => setImmediate(resolve));
      expect(events.map((e) => [e.payload.from, e.payload.to])).toEqual([
        ['UP', 'DOWN'],
        ['DOWN', 'UP'],
      ]);
      await unsubscribe();
      const page = await store.services(tenant, { status: 'UP' }, pageRequest({}));
      expect(page.totalCount).toBe(1);
      expect(await store.deregisterService(tenant, s.id)).toBe(true);
      expect(await store.deregisterService(tenant, s.id)).toBe(false);
    });

    it('keeps a peer catalog exactly as last pulled and backs off failures', async () => {
      const { store, tenant, clock } = setup();
      const peer = await store.registerPeer(tenant, normalisePeer({ name: 'p', kind: 'DUADP', url: 'https://peer.example.com/', syncIntervalSeconds: 60 }));
      expect(peer).toMatchObject({ state: 'PENDING', url: 'https://peer.example.com', trust: 'LOW' });
      const pulled = (id: string) => ({
        remoteId: id,
        name: `Remote ${id}`,
        description: null,
        skills: [],
        card: { name: id },
        sourceUrl: `https://peer.example.com/v1/agents/${id}/card`,
        signatureVerified: false,
        signatureError: null,
      });
      expect(await store.recordPullSuccess(peer, [pulled('a'), pulled('b')])).toMatchObject({ state: 'OK', agentCount: 2 });
      const after = await store.recordPullSuccess(peer, [pulled('b')]);
      expect((await store.remoteAgents(tenant, peer.id, 10)).map((r) => r.id)).toEqual(['b']);
      const failed = await store.recordPullFailure(after, 'GET https://peer.example.com/.well-known/duadp.json: HTTP 500');
      expect(failed).toMatchObject({ state: 'FAILING', consecutiveFailures: 1 });
      expect(Date.parse(failed.nextSyncAt) - clock.now()).toBe(120_000);
      const again = await store.recordPullFailure(failed, 'again');
      expect(Date.parse(again.nextSyncAt) - clock.now()).toBe(240_000);
      // The catalog stays as last pulled while the peer fails.
      expect(await store.remoteAgents(tenant, peer.id, 10)).toHaveLength(1);
      expect(await store.removePeer(tenant, peer.id)).toBe(true);
      expect(await store.remoteAgents(tenant, peer.id, 10)).toEqual([]);
    });
  });
});
