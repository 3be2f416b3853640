import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DomainEvent } from '../../runtime/events.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { AGENT_CREDENTIAL_SCOPES, ApiKeyCreated, ApiKeyRevoked, hashKey, LIMITS, normaliseCreateInput } from '../../subgraphs/governance/domain.ts';
import { migrations } from '../../subgraphs/governance/migrations.ts';
import { ApiKeyStore, type GovernanceDB } from '../../subgraphs/governance/store.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';

describe.each(backends)('governance store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<GovernanceDB>;
    beforeAll(async () => {
      t = await openTestDatabase<GovernanceDB>(backend, 'governance', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup() {
      const clock = manualClock();
      const store = new ApiKeyStore(t.database, t.bus, t.logger, clock.now);
      return { clock, store, tenant: `tenant-${randomUUID()}` };
    }
    const draft = (name = 'CI', scopes = ['agents:read']) => normaliseCreateInput({ name, scopes });

    it('creates a key, stores only its hash, and verifies it as the tenant with its scopes', async () => {
      const { store, tenant } = setup();
      const { apiKey, secret } = await store.create(tenant, draft('CI', ['tasks:write', 'agents:read']), 'alice');
      expect(apiKey).toMatchObject({
        tenantId: tenant,
        name: 'CI',
        scopes: ['agents:read', 'tasks:write'],
        createdBy: 'alice',
        lastUsedAt: null,
        revokedAt: null,
      });
      expect(secret.startsWith(`${apiKey.prefix}_`)).toBe(true);

      const stored = await t.database.db.selectFrom('api_keys').selectAll().where('id', '=', apiKey.id).executeTakeFirstOrThrow();
      expect(JSON.stringify(stored)).not.toContain(secret.slice(apiKey.prefix.length + 1));
      expect(stored.secret_hash).toBe(hashKey(secret));

      expect(await store.verify(secret)).toEqual({
        keyId: apiKey.id,
        tenantId: tenant,
        subject: `apikey:${apiKey.id}`,
        scopes: ['agents:read', 'tasks:write'],
        agentId: null,
      });
    });

    it('refuses a wrong, malformed or unknown key, and changes nothing doing so', async () => {
      const { store, tenant } = setup();
      const { apiKey, secret } = await store.create(tenant, draft(), null);
      const wrong = secret.slice(0, -2) + (secret.endsWith('AA') ? 'BB' : 'AA');
      for (const key of [wrong, `${secret}x`, `ap_0123456789abcdef_${'A'.repeat(43)}`, '', 'Bearer x']) expect(await store.verify(key)).toBeNull();
      expect((await store.get(tenant, apiKey.id))?.lastUsedAt).toBeNull();
    });

    it('records use at most once a minute per key', async () => {
      const { store, tenant, clock } = setup();
      const { apiKey, secret } = await store.create(tenant, draft(), null);
      const first = new Date(clock.now()).toISOString();
      await store.verify(secret);
      expect((await store.get(tenant, apiKey.id))?.lastUsedAt).toBe(first);
      clock.advance(59_000);
      await store.verify(secret);
      expect((await store.get(tenant, apiKey.id))?.lastUsedAt).toBe(first);
      clock.advance(2_000);
      await store.verify(secret);
      expect((await store.get(tenant, apiKey.id))?.lastUsedAt).toBe(new Date(clock.now()).toISOString());
    });

    it('revokes for good: the key stops verifying, a second revoke changes nothing', async () => {
      const { store, tenant, clock } = setup();
      const { apiKey, secret } = await store.create(tenant, draft(), null);
      const revoked = await store.revoke(tenant, apiKey.id, 'bob');
      expect(revoked.revokedAt).toBe(new Date(clock.now()).toISOString());
      expect(await store.verify(secret)).toBeNull();
      clock.advance(5_000);
      expect(await store.revoke(tenant, apiKey.id, 'carol')).toEqual(revoked);
      const row = await t.database.db.selectFrom('api_keys').select(['revoked_by']).where('id', '=', apiKey.id).executeTakeFirstOrThrow();
      expect(row.revoked_by).toBe('bob');
    });

    it('keeps tenants apart: another tenant’s key id is NOT_FOUND and never listed', async () => {
      const a = setup();
      const b = { ...a, tenant: `tenant-${randomUUID()}` };
      const { apiKey, secret } = await a.store.create(a.tenant, draft('mine'), null);
      expect(await b.store.get(b.tenant, apiKey.id)).toBeNull();
      const err = await rejection(b.store.revoke(b.tenant, apiKey.id, 'intruder'));
      expect(err.extensions).toMatchObject({ code: 'NOT_FOUND', id: apiKey.id });
      expect((await b.store.list(b.tenant, { includeRevoked: true }, pageRequest({}))).totalCount).toBe(0);
      // Still valid for its own tenant: the failed revoke changed nothing.
      expect((await a.store.verify(secret))?.tenantId).toBe(a.tenant);
      expect(await a.store.revoke(a.tenant, randomUUID(), null).catch((e: GraphQLError) => e.extensions.code)).toBe('NOT_FOUND');
    });

    it('lists newest first with keyset pages, revoked keys only when asked', async () => {
      const { store, tenant, clock } = setup();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await store.create(tenant, draft(`k${i}`), null)).apiKey.id);
        clock.advance(1_000);
      }
      await store.revoke(tenant, ids[1]!, null);
      const page1 = await store.list(tenant, { includeRevoked: false }, pageRequest({ first: 2 }));
      expect(page1.nodes.map((k) => k.name)).toEqual(['k4', 'k3']);
      expect(page1.totalCount).toBe(4);
      expect(page1.pageInfo.hasNextPage).toBe(true);
      const page2 = await store.list(tenant, { includeRevoked: false }, pageRequest({ first: 2, after: page1.pageInfo.endCursor }));
      expect(page2.nodes.map((k) => k.name)).toEqual(['k2', 'k0']);
      expect(page2.pageInfo.hasNextPage).toBe(false);
      const all = await store.list(tenant, { includeRevoked: true }, pageRequest({ first: 10 }));
      expect(all.nodes.map((k) => k.name)).toEqual(['k4', 'k3', 'k2', 'k1', 'k0']);
      expect(all.totalCount).toBe(5);
    });

    it('publishes ApiKeyCreated and ApiKeyRevoked after commit, without the secret', async () => {
      const { store, tenant } = setup();
      const seen: DomainEvent[] = [];
      const unsubscribe = await Promise.all([ApiKeyCreated, ApiKeyRevoked].map((type) => t.bus.subscribe(type, (e) => void seen.push(e))));
      const { apiKey, secret } = await store.create(tenant, draft(), 'alice');
      await store.revoke(tenant, apiKey.id, 'alice');
      await vi.waitFor(() => expect(seen.filter((e) => e.tenantId === tenant)).toHaveLength(2));
      const mine = seen.filter((e) => e.tenantId === tenant);
      expect(mine.map((e) => [e.type, e.subjectId])).toEqual([
        [ApiKeyCreated, apiKey.id],
        [ApiKeyRevoked, apiKey.id],
      ]);
      expect(JSON.stringify(mine)).not.toContain(secret);
      await Promise.all(unsubscribe.map((u) => u()));
    });

    it(`refuses more than ${LIMITS.activeKeysPerTenant} active keys per tenant with CONFLICT, writing nothing`, async () => {
      const { store, tenant } = setup();
      const rows = Array.from({ length: LIMITS.activeKeysPerTenant }, (_, i) => ({
        id: randomUUID(),
        tenant_id: tenant,
        name: `bulk${i}`,
        scopes: '["agents:read"]',
        prefix: randomUUID().replace(/-/g, '').slice(0, 16),
        secret_hash: 'x',
        created_at: '2026-01-01T00:00:00.000Z',
        created_by: null,
        last_used_at: null,
        revoked_at: null,
        revoked_by: null,
        agent_id: null,
      }));
      await t.database.db.insertInto('api_keys').values(rows).execute();
      const err = await rejection(store.create(tenant, draft('one too many'), null));
      expect(err.extensions).toMatchObject({ code: 'CONFLICT', limit: LIMITS.activeKeysPerTenant });
      expect((await store.list(tenant, { includeRevoked: true }, pageRequest({}))).totalCount).toBe(LIMITS.activeKeysPerTenant);
      await store.revoke(tenant, rows[0]!.id, null);
      expect((await store.create(tenant, draft('now fits'), null)).apiKey.name).toBe('now fits');
    });

    describe('agent credentials', () => {
      it('binds a credential to its agent: verify answers the agentId, with the fixed agent scopes', async () => {
        const { store, tenant } = setup();
        const agentId = randomUUID();
        const { apiKey, secret } = await store.issueAgentCredential(tenant, agentId, 'Agent credential: Scout', 'alice');
        expect(apiKey).toMatchObject({
          agentId,
          scopes: [...AGENT_CREDENTIAL_SCOPES].sort(),
          name: 'Agent credential: Scout',
          createdBy: 'alice',
        });
        expect(AGENT_CREDENTIAL_SCOPES).not.toContain('admin');
        expect(AGENT_CREDENTIAL_SCOPES).not.toContain('tasks:delegate');
        expect(await store.verify(secret)).toEqual({
          keyId: apiKey.id,
          tenantId: tenant,
          subject: `apikey:${apiKey.id}`,
          scopes: AGENT_CREDENTIAL_SCOPES,
          agentId,
        });
        const stored = await t.database.db.selectFrom('api_keys').select(['agent_id', 'secret_hash']).where('id', '=', apiKey.id).executeTakeFirstOrThrow();
        expect(stored).toEqual({ agent_id: agentId, secret_hash: hashKey(secret) });
      });

      it('lists one agent’s credentials with the agentId filter, and does not count them against the partner-key limit', async () => {
        const { store, tenant } = setup();
        const [a, b] = [randomUUID(), randomUUID()];
        const ka = await store.issueAgentCredential(tenant, a, 'A', null);
        await store.issueAgentCredential(tenant, b, 'B', null);
        const partner = await store.create(tenant, draft('partner'), null);
        const ofA = await store.list(tenant, { includeRevoked: false, agentId: a }, pageRequest({}));
        expect(ofA.nodes.map((k) => k.id)).toEqual([ka.apiKey.id]);
        expect(ofA.totalCount).toBe(1);
        const everything = await store.list(tenant, { includeRevoked: false }, pageRequest({}));
        expect(everything.nodes.map((k) => k.id)).toContain(partner.apiKey.id);
        expect(everything.totalCount).toBe(3);
      });

      it('rotates without overlap: the new key works, the old ones stop at once', async () => {
        const { store, tenant, clock } = setup();
        const agentId = randomUUID();
        const old = await store.issueAgentCredential(tenant, agentId, 'Scout', null);
        clock.advance(1_000);
        const next = await store.rotateAgentCredential(tenant, agentId, 0, 'bob');
        expect(next.apiKey).toMatchObject({ agentId, name: 'Scout', createdBy: 'bob', revokedAt: null });
        expect(next.secret).not.toBe(old.secret);
        expect(await store.verify(old.secret)).toBeNull();
        expect((await store.verify(next.secret))?.agentId).toBe(agentId);
        expect((await store.get(tenant, old.apiKey.id))?.revokedAt).toBe(new Date(clock.now()).toISOString());
        const listed = await store.list(tenant, { includeRevoked: false, agentId }, pageRequest({}));
        expect(listed.nodes.map((k) => k.id)).toEqual([next.apiKey.id]);
      });

      it('rotates with an overlap: the old key works until the overlap ends, then is refused; revoke ends it early', async () => {
        const { store, tenant, clock } = setup();
        const agentId = randomUUID();
        const old = await store.issueAgentCredential(tenant, agentId, 'Scout', null);
        const next = await store.rotateAgentCredential(tenant, agentId, 300, null);
        const until = new Date(clock.now() + 300_000).toISOString();
        expect((await store.get(tenant, old.apiKey.id))?.revokedAt).toBe(until);
        // Both work during the overlap, and both are listed as active.
        expect((await store.verify(old.secret))?.agentId).toBe(agentId);
        expect((await store.verify(next.secret))?.agentId).toBe(agentId);
        expect((await store.list(tenant, { includeRevoked: false, agentId }, pageRequest({}))).totalCount).toBe(2);
        clock.advance(299_000);
        expect(await store.verify(old.secret)).not.toBeNull();
        clock.advance(1_000);
        expect(await store.verify(old.secret)).toBeNull();
        expect((await store.list(tenant, { includeRevoked: false, agentId }, pageRequest({}))).totalCount).toBe(1);

        // A second rotation with overlap; revoking the outgoing key ends its overlap at once.
        const third = await store.rotateAgentCredential(tenant, agentId, 600, null);
        expect(await store.verify(next.secret)).not.toBeNull();
        const revoked = await store.revoke(tenant, next.apiKey.id, 'carol');
        expect(revoked.revokedAt).toBe(new Date(clock.now()).toISOString());
        expect(await store.verify(next.secret)).toBeNull();
        expect(await store.verify(third.secret)).not.toBeNull();
        // A rotation never pushes an earlier revocation later.
        const beforeOld = (await store.get(tenant, old.apiKey.id))?.revokedAt;
        await store.rotateAgentCredential(tenant, agentId, 3600, null);
        expect((await store.get(tenant, old.apiKey.id))?.revokedAt).toBe(beforeOld);
      });

      it('refuses to rotate for an agent without credentials (NOT_FOUND), and keeps tenants apart', async () => {
        const { store, tenant } = setup();
        const agentId = randomUUID();
        const err = await rejection(store.rotateAgentCredential(tenant, agentId, 0, null));
        expect(err.extensions).toMatchObject({ code: 'NOT_FOUND', agentId });
        const { secret } = await store.issueAgentCredential(tenant, agentId, 'Scout', null);
        const other = `tenant-${randomUUID()}`;
        expect((await rejection(store.rotateAgentCredential(other, agentId, 0, null))).extensions.code).toBe('NOT_FOUND');
        expect((await store.verify(secret))?.tenantId).toBe(tenant);
      });

      it(`refuses more than ${LIMITS.activeCredentialsPerAgent} active credentials per agent with CONFLICT`, async () => {
        const { store, tenant } = setup();
        const agentId = randomUUID();
        for (let i = 0; i < LIMITS.activeCredentialsPerAgent; i++) await store.issueAgentCredential(tenant, agentId, 'Scout', null);
        expect((await rejection(store.issueAgentCredential(tenant, agentId, 'Scout', null))).extensions).toMatchObject({ code: 'CONFLICT', agentId });
        // Rotation without overlap frees the room it needs.
        const rotated = await store.rotateAgentCredential(tenant, agentId, 0, null);
        expect((await store.list(tenant, { includeRevoked: false, agentId }, pageRequest({}))).nodes.map((k) => k.id)).toEqual([rotated.apiKey.id]);
      });
    });
  });
});
