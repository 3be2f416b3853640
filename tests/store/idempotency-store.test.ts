// runtime/idempotency.ts on every backend (SQLite always, PostgreSQL when DATABASE_URL is set):
// a key is stored in the transaction of the change it guards; the same key and request answer the
// first result and create nothing, another request under the key is refused, concurrent requests
// with one key create one row, keys are scoped to the caller, and expire.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Migration } from 'kysely';
import { GraphQLError } from 'graphql';
import { fingerprint, Idempotency, idempotencyMigration, pruneIdempotencyKeys, replayById, type IdempotentRequest } from '../../runtime/idempotency.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';

interface DB {
  notes: { id: string; tenant_id: string; text: string };
}

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_idempotency': idempotencyMigration(),
};

const T0 = Date.parse('2026-01-01T00:00:00Z');
const TTL_SECONDS = 60;

function request(text: string, key = 'k-1', principal = '["user","alice",null]'): IdempotentRequest {
  return { tenantId: 't1', principal, key, fingerprint: fingerprint('createNote', { text }) };
}

function codeOf(err: unknown): unknown {
  return err instanceof GraphQLError ? err.extensions.code : err;
}

for (const { backend, skip } of backends) {
  describe.skipIf(skip)(`idempotency keys on ${backend}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let t: TestDatabase<DB>;
    let idempotency: Idempotency;
    let counter = 0;

    /** A keyed "create a note" through Idempotency.run, as a store does it. */
    function createNote(idem: Idempotency, req: IdempotentRequest | undefined, text: string, now = T0, fail = false) {
      return idem.run(req, (once) =>
        t.database.transaction((trx) =>
          once(
            trx,
            now,
            async () => {
              const note = { id: `n${++counter}`, tenant_id: 't1', text };
              await trx.insertInto('notes').values(note).execute();
              if (fail) throw new Error('the change failed');
              return note;
            },
            replayById((id) =>
              trx
                .selectFrom('notes')
                .selectAll()
                .where('id', '=', id)
                .executeTakeFirst()
                .then((row) => row ?? null),
            ),
          ),
        ),
      );
    }

    const noteCount = async () =>
      (
        await t.database.db
          .selectFrom('notes')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n;

    beforeEach(async () => {
      t = await openTestDatabase<DB>(backend, 'idempotency', migrations);
      idempotency = new Idempotency({ ttlSeconds: TTL_SECONDS });
    });
    afterEach(async () => {
      await t.drop();
    });

    it('answers a repeat of the same key and request with the first result and creates nothing', async () => {
      const first = await createNote(idempotency, request('hello'), 'hello');
      const again = await createNote(idempotency, request('hello'), 'hello');
      expect(again.id).toBe(first.id);
      expect(Number(await noteCount())).toBe(1);
    });

    it('creates every time without a key', async () => {
      await createNote(idempotency, undefined, 'hello');
      await createNote(idempotency, undefined, 'hello');
      expect(Number(await noteCount())).toBe(2);
    });

    it('refuses the same key with a different request: IDEMPOTENCY_KEY_REUSED, nothing created', async () => {
      await createNote(idempotency, request('hello'), 'hello');
      const refused = await createNote(idempotency, request('other'), 'other').catch((err: unknown) => err);
      expect(codeOf(refused)).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(Number(await noteCount())).toBe(1);
    });

    it('scopes keys to the caller: another principal or tenant with the same key creates its own', async () => {
      const alice = await createNote(idempotency, request('hello'), 'hello');
      const bob = await createNote(idempotency, request('hello', 'k-1', '["user","bob",null]'), 'hello');
      const otherTenant = await createNote(idempotency, { ...request('hello'), tenantId: 't2' }, 'hello');
      expect(new Set([alice.id, bob.id, otherTenant.id]).size).toBe(3);
    });

    it('keeps no key when the change rolls back: the retry runs', async () => {
      await expect(createNote(idempotency, request('hello'), 'hello', T0, true)).rejects.toThrow('the change failed');
      const retried = await createNote(idempotency, request('hello'), 'hello');
      expect(retried.text).toBe('hello');
      expect(Number(await noteCount())).toBe(1);
    });

    it('runs one of two concurrent same-key requests in one process; the other gets 409 IN_FLIGHT or the stored answer', async () => {
      const outcomes = await Promise.allSettled([createNote(idempotency, request('hello'), 'hello'), createNote(idempotency, request('hello'), 'hello')]);
      const ids = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.id] : []));
      const refusals = outcomes.flatMap((o) => (o.status === 'rejected' ? [codeOf(o.reason)] : []));
      expect(ids.length).toBeGreaterThanOrEqual(1);
      expect(new Set(ids).size).toBe(1);
      for (const code of refusals) expect(code).toBe('IDEMPOTENCY_KEY_IN_FLIGHT');
      expect(Number(await noteCount())).toBe(1);
    });

    it('runs one of two concurrent same-key requests from two processes (replicas): one row, the same answer or 409', async () => {
      const replica = new Idempotency({ ttlSeconds: TTL_SECONDS });
      const outcomes = await Promise.allSettled([createNote(idempotency, request('hello'), 'hello'), createNote(replica, request('hello'), 'hello')]);
      const ids = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.id] : []));
      const refusals = outcomes.flatMap((o) => (o.status === 'rejected' ? [codeOf(o.reason)] : []));
      expect(ids.length).toBeGreaterThanOrEqual(1);
      expect(new Set(ids).size).toBe(1);
      for (const code of refusals) expect(code).toBe('IDEMPOTENCY_KEY_IN_FLIGHT');
      expect(Number(await noteCount())).toBe(1);
    });

    it('forgets a key after its retention: the same key creates again, and pruning deletes expired keys', async () => {
      const first = await createNote(idempotency, request('hello'), 'hello', T0);
      const later = T0 + TTL_SECONDS * 1000;
      const second = await createNote(idempotency, request('other'), 'other', later);
      expect(second.id).not.toBe(first.id);
      expect(Number(await noteCount())).toBe(2);
      await createNote(idempotency, request('x', 'k-2'), 'x', T0);
      expect(await pruneIdempotencyKeys(t.database.db, later)).toBe(1);
      expect(await pruneIdempotencyKeys(t.database.db, later)).toBe(0);
    });
  });
}

describe('fingerprint', () => {
  it('ignores the order of object keys but not the field or the values', () => {
    expect(fingerprint('submitTask', { input: { a: 1, b: [1, 2] } })).toBe(fingerprint('submitTask', { input: { b: [1, 2], a: 1 } }));
    expect(fingerprint('submitTask', { input: { a: 1 } })).not.toBe(fingerprint('startWorkflowRun', { input: { a: 1 } }));
    expect(fingerprint('submitTask', { input: { a: 1 } })).not.toBe(fingerprint('submitTask', { input: { a: 2 } }));
  });
});
