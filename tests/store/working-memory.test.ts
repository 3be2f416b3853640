// Working memory on every store: SQLite, PostgreSQL (DATABASE_URL) and Redis (REDIS_URL). The same
// expectations for each: compare-and-set by version, atomic increments under concurrency, expiry,
// limits; what a resolver checks (namespaces, sizes) is in the e2e memory test.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../subgraphs/memory/migrations.ts';
import { encodeValue, expiryOf } from '../../subgraphs/memory/working/domain.ts';
import { RedisWorkingMemory } from '../../subgraphs/memory/working/redis-store.ts';
import { SqlWorkingMemory, type WorkingMemoryDB, type WorkingMemoryStore } from '../../subgraphs/memory/working/store.ts';
import { backends, openTestDatabase, REDIS_URL, type TestDatabase } from '../support/databases.ts';
import { rejection } from '../support/store-helpers.ts';

const limits = { maxValueBytes: 64, maxTtlSeconds: 3600 };
const stores = [
  ...backends.map(({ backend, skip }) => ({ name: backend, skip })),
  { name: 'redis', skip: REDIS_URL ? (false as const) : 'REDIS_URL is not set' },
];
if (!REDIS_URL) console.warn('[tests] the Redis working-memory store test is skipped: REDIS_URL is not set (CI sets it).');

describe.each(stores)('working memory on $name', ({ name, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private store' : `skipped: ${skip}`, () => {
    let t: TestDatabase<WorkingMemoryDB> | undefined;
    let clock = Date.now();
    let store: WorkingMemoryStore;
    beforeAll(async () => {
      if (name === 'redis') {
        store = new RedisWorkingMemory(REDIS_URL as string, `test${randomUUID().slice(0, 8)}`, () => clock);
      } else {
        t = await openTestDatabase<WorkingMemoryDB>(name as 'sqlite' | 'postgres', 'working', migrations);
        store = new SqlWorkingMemory(t.database, () => clock);
      }
    });
    afterAll(async () => {
      await store?.close();
      await t?.drop();
    });
    const tenant = () => `tenant-${randomUUID()}`;

    it('sets and gets JSON values; versions count writes; compare-and-set refuses a stale version', async () => {
      const tn = tenant();
      expect(await store.get(tn, 'agents/a1', 'plan')).toBeNull();
      const first = await store.set(tn, 'agents/a1', 'plan', encodeValue({ step: 1 }, limits), null, 0);
      expect(first).toMatchObject({ namespace: 'agents/a1', key: 'plan', version: 1, expiresAt: null });
      expect(JSON.parse((await store.get(tn, 'agents/a1', 'plan'))!.valueJson)).toEqual({ step: 1 });
      // Absent was required: it exists now.
      const exists = await rejection(store.set(tn, 'agents/a1', 'plan', '2', null, 0));
      expect(exists.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 0, currentVersion: 1 });
      const second = await store.set(tn, 'agents/a1', 'plan', encodeValue({ step: 2 }, limits), null, 1);
      expect(second.version).toBe(2);
      const stale = await rejection(store.set(tn, 'agents/a1', 'plan', '3', null, 1));
      expect(stale.extensions).toMatchObject({ code: 'CONFLICT', expectedVersion: 1, currentVersion: 2 });
      const missing = await rejection(store.set(tn, 'agents/a1', 'nothing', '3', null, 4));
      expect(missing.extensions).toMatchObject({ code: 'CONFLICT', currentVersion: 0 });
      expect(await store.get(tn, 'agents/a1', 'nothing')).toBeNull();
      expect((await store.set(tn, 'agents/a1', 'plan', 'null', null, null)).version).toBe(3);
      // Other tenants and namespaces are other entries.
      expect(await store.get(tenant(), 'agents/a1', 'plan')).toBeNull();
      expect(await store.get(tn, 'agents/a2', 'plan')).toBeNull();
      expect((await rejection(store.delete(tn, 'agents/a1', 'plan', 2))).extensions).toMatchObject({ code: 'CONFLICT', currentVersion: 3 });
      expect(await store.delete(tn, 'agents/a1', 'plan', 3)).toBe(true);
      expect(await store.delete(tn, 'agents/a1', 'plan', null)).toBe(false);
      expect(await store.delete(tn, 'agents/a1', 'plan', 0)).toBe(false);
    });

    it('increments atomically: 40 concurrent increments of one counter all count', async () => {
      const tn = tenant();
      const results = await Promise.all(Array.from({ length: 40 }, () => store.increment(tn, 'shared/counters', 'runs', 1, null)));
      expect(new Set(results.map((r) => r.version)).size).toBe(40);
      expect(await store.get(tn, 'shared/counters', 'runs')).toMatchObject({ valueJson: '40', version: 40 });
      expect((await store.increment(tn, 'shared/counters', 'runs', -50, null)).valueJson).toBe('-10');
      await store.set(tn, 'shared/counters', 'word', '"seven"', null, null);
      expect((await rejection(store.increment(tn, 'shared/counters', 'word', 1, null))).extensions.code).toBe('BAD_USER_INPUT');
      await store.set(tn, 'shared/counters', 'big', String(Number.MAX_SAFE_INTEGER - 1), null, null);
      expect((await store.increment(tn, 'shared/counters', 'big', 1, null)).valueJson).toBe(String(Number.MAX_SAFE_INTEGER));
      expect((await rejection(store.increment(tn, 'shared/counters', 'big', 1, null))).extensions.code).toBe('BAD_USER_INPUT');
    });

    it('expires entries: absent after their time, and written again from version 1', async () => {
      const tn = tenant();
      // Redis expires by its own clock: start from the real time.
      clock = Date.now();
      const expiresAt = expiryOf(1, clock, limits);
      const entry = await store.set(tn, 'agents/a1', 'lease', '"mine"', expiresAt, null);
      expect(entry.expiresAt).toBe(expiresAt);
      // An increment keeps the expiry it does not replace.
      await store.set(tn, 'agents/a1', 'count', '1', expiresAt, null);
      expect((await store.increment(tn, 'agents/a1', 'count', 1, null)).expiresAt).toBe(expiresAt);
      if (name === 'redis') await new Promise((r) => setTimeout(r, 1_100));
      clock += 1_100;
      expect(await store.get(tn, 'agents/a1', 'lease')).toBeNull();
      expect((await rejection(store.set(tn, 'agents/a1', 'lease', '"again"', null, 1))).extensions).toMatchObject({ code: 'CONFLICT', currentVersion: 0 });
      expect((await store.set(tn, 'agents/a1', 'lease', '"again"', null, 0)).version).toBe(1);
      expect((await store.increment(tn, 'agents/a1', 'count', 5, null)).valueJson).toBe('5');
      if (name !== 'redis') {
        await store.set(tn, 'agents/a1', 'gone', '1', expiryOf(1, clock, limits), null);
        clock += 1_100;
        expect(await store.sweepExpired()).toBeGreaterThanOrEqual(1);
      }
    });

    it('refuses values over the size limit and bad expiries before writing', () => {
      expect(() => encodeValue('x'.repeat(100), limits)).toThrow(/at most 64/);
      expect(() => expiryOf(0, clock, limits)).toThrow(/ttlSeconds/);
      expect(() => expiryOf(3601, clock, limits)).toThrow(/ttlSeconds/);
    });
  });
});
