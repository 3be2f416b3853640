import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyPage, normaliseParts, type Limits } from '../../subgraphs/collaboration/domain.ts';
import { migrations } from '../../subgraphs/collaboration/migrations.ts';
import { CollaborationStore } from '../../subgraphs/collaboration/store.ts';
import type { MessageDraft } from '../../subgraphs/collaboration/store/rows.ts';
import type { CollaborationDB } from '../../subgraphs/collaboration/store/tables.ts';
import { backends, openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { manualClock, rejection } from '../support/store-helpers.ts';

const LIMITS: Limits = { messageMaxBytes: 1024, messagesPerMinute: 30, participantsPerChannel: 4 };

describe.each(backends)('collaboration store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<CollaborationDB>;
    beforeAll(async () => {
      t = await openTestDatabase<CollaborationDB>(backend, 'collaboration', migrations);
    });
    afterAll(async () => {
      await t?.drop();
    });

    function setup(limits: Limits = LIMITS) {
      const clock = manualClock();
      const store = new CollaborationStore(t.database, t.bus, t.logger, limits, clock.now);
      const tenant = `tenant-${randomUUID()}`;
      const group = async (others: string[] = ['user:bob'], roles: Record<string, 'MEMBER' | 'OBSERVER'> = {}) =>
        (
          await store.createChannel(tenant, {
            kind: 'GROUP',
            title: 'g',
            taskId: null,
            workflowRunId: null,
            subjectKey: null,
            owner: 'user:alice',
            others: others.map((key) => ({ key, role: roles[key] ?? 'MEMBER' })),
          })
        ).channel;
      const draft = (channelId: string, text: string, extra: Partial<MessageDraft> = {}): MessageDraft => {
        const { parts, json } = normaliseParts([{ text }], limits);
        return { channelId, sender: 'user:alice', clientMessageId: null, parts, partsJson: json, replyToId: null, mentions: [], autoJoin: false, ...extra };
      };
      return { clock, store, tenant, group, draft };
    }

    it('gives messages gapless per-channel sequences, also when sent concurrently', async () => {
      const { store, tenant, group, draft } = setup({ ...LIMITS, messagesPerMinute: 100 });
      const a = await group();
      const b = await group();
      const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => store.send(tenant, draft(i % 2 ? a.id : b.id, `m${i}`))));
      const seqOf = (id: string) =>
        sent
          .filter((m) => m.channelId === id)
          .map((m) => m.sequence)
          .sort((x, y) => x - y);
      expect(seqOf(a.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(seqOf(b.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect((await store.getChannel(tenant, a.id))?.lastSequence).toBe(10);
    });

    it('answers a repeated clientMessageId with the first message, and refuses it for different parts', async () => {
      const { store, tenant, group, draft } = setup();
      const c = await group();
      const first = await store.send(tenant, draft(c.id, 'hello', { clientMessageId: 'c-1' }));
      const again = await store.send(tenant, draft(c.id, 'hello', { clientMessageId: 'c-1' }));
      expect(again.id).toBe(first.id);
      expect((await store.getChannel(tenant, c.id))?.lastSequence).toBe(1);
      expect((await rejection(store.send(tenant, draft(c.id, 'other', { clientMessageId: 'c-1' })))).extensions.code).toBe('CONFLICT');
    });

    it('refuses observers, non-participants, a full channel and a sender over its rate', async () => {
      const { store, tenant, group, draft, clock } = setup({ ...LIMITS, messagesPerMinute: 3 });
      const c = await group(['user:bob', 'user:olga'], { 'user:olga': 'OBSERVER' });
      expect((await rejection(store.send(tenant, draft(c.id, 'x', { sender: 'user:olga' })))).extensions.code).toBe('NOT_A_PARTICIPANT');
      expect((await rejection(store.send(tenant, draft(c.id, 'x', { sender: 'user:eve' })))).extensions.code).toBe('NOT_A_PARTICIPANT');
      await store.join(tenant, c.id, 'agent:x', 'MEMBER');
      expect((await rejection(store.join(tenant, c.id, 'agent:y', 'MEMBER'))).extensions.code).toBe('CHANNEL_FULL');
      for (let i = 0; i < 3; i++) await store.send(tenant, draft(c.id, `m${i}`));
      const limited = await rejection(store.send(tenant, draft(c.id, 'one too many')));
      expect(limited.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 3 });
      clock.advance(61_000);
      expect((await store.send(tenant, draft(c.id, 'later'))).sequence).toBe(4);
      expect(() => normaliseParts([{ text: 'x'.repeat(2000) }], LIMITS)).toThrow(/at most 1024/);
    });

    it('keeps the history of edits and deletions, and threads replies', async () => {
      const { store, tenant, group, draft } = setup();
      const c = await group();
      const root = await store.send(tenant, draft(c.id, 'question'));
      const reply = await store.send(tenant, draft(c.id, 'answer', { replyToId: root.id, sender: 'user:bob' }));
      expect(reply.threadId).toBe(root.id);
      const { parts, json } = normaliseParts([{ text: 'question, edited' }], LIMITS);
      const edited = await store.change(tenant, root.id, { kind: 'edit', parts, partsJson: json, expectedVersion: 1 }, () => {}, 'user:alice');
      expect(edited).toMatchObject({ version: 2, parts: [{ kind: 'TEXT', text: 'question, edited' }] });
      expect(
        (await rejection(store.change(tenant, root.id, { kind: 'edit', parts, partsJson: json, expectedVersion: 1 }, () => {}, 'user:alice'))).extensions.code,
      ).toBe('CONFLICT');
      const deleted = await store.change(tenant, root.id, { kind: 'delete' }, () => {}, 'user:alice');
      expect(deleted).toMatchObject({ version: 3, parts: [] });
      expect(deleted.deletedAt).not.toBeNull();
      const history = await store.history(tenant, deleted);
      expect(history.map((v) => [v.version, v.parts.map((p) => (p.kind === 'TEXT' ? p.text : ''))])).toEqual([
        [3, []],
        [2, ['question, edited']],
        [1, ['question']],
      ]);
      const thread = await store.messages(tenant, c.id, historyPage({ first: 10 }), root.id);
      expect(thread.nodes.map((m) => m.id)).toEqual([root.id, reply.id]);
    });

    it('pages history both ways by channel sequence, and counts unread messages after the read marker', async () => {
      const { store, tenant, group, draft } = setup({ ...LIMITS, messagesPerMinute: 100 });
      const c = await group();
      for (let i = 1; i <= 7; i++) await store.send(tenant, draft(c.id, `m${i}`, { sender: i % 2 ? 'user:alice' : 'user:bob' }));
      const newest = await store.messages(tenant, c.id, historyPage({ last: 3 }), null);
      expect(newest.nodes.map((m) => m.sequence)).toEqual([5, 6, 7]);
      expect(newest.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
      const older = await store.messages(tenant, c.id, historyPage({ last: 3, before: newest.pageInfo.startCursor }), null);
      expect(older.nodes.map((m) => m.sequence)).toEqual([2, 3, 4]);
      const oldest = await store.messages(tenant, c.id, historyPage({ last: 3, before: older.pageInfo.startCursor }), null);
      expect(oldest.nodes.map((m) => m.sequence)).toEqual([1]);
      expect(oldest.pageInfo.hasPreviousPage).toBe(false);
      const forward = await store.messages(tenant, c.id, historyPage({ first: 4, after: oldest.pageInfo.endCursor }), null);
      expect(forward.nodes.map((m) => m.sequence)).toEqual([2, 3, 4, 5]);
      expect(forward.pageInfo.hasNextPage).toBe(true);

      // bob sent 2, 4, 6 (each marks his own read); alice's 1, 3, 5, 7 are his to read: only 7 after his marker at 6.
      expect(await store.unreadCount(tenant, c.id, 'user:bob', 6)).toBe(1);
      expect(await store.unreadCount(tenant, c.id, 'user:bob', 0)).toBe(4);
      const marked = await store.markRead(tenant, c.id, 'user:bob', 99);
      expect(marked.lastReadSequence).toBe(7);
      expect((await store.markRead(tenant, c.id, 'user:bob', 2)).lastReadSequence).toBe(7);
    });

    it('opens one channel per subject, whoever opens it first', async () => {
      const { store, tenant } = setup();
      const taskId = randomUUID();
      const open = (owner: string) =>
        store.createChannel(tenant, { kind: 'TASK', title: null, taskId, workflowRunId: null, subjectKey: `task:${taskId}`, owner, others: [] });
      const [a, b] = await Promise.all([open('user:alice'), open('agent:x')]);
      expect(a.channel.id).toBe(b.channel.id);
      expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    });

    it('takes a participant offline with their last connection, or once their connections expire', async () => {
      const { store, tenant, clock } = setup();
      const one = await store.connect(tenant, 'agent:a', `c1-${tenant}`, 'replica-1', 1000);
      expect(one).toMatchObject({ status: 'ONLINE', connections: 1 });
      await store.connect(tenant, 'agent:a', `c2-${tenant}`, 'replica-2', 1000);
      expect((await store.setChosenStatus(tenant, 'agent:a', 'BUSY')).status).toBe('BUSY');
      expect((await store.disconnect(tenant, 'agent:a', `c1-${tenant}`)).status).toBe('BUSY');
      // replica-2 dies: nobody refreshes c2; replica-1 refreshing its own changes nothing for it.
      clock.advance(600);
      await store.refresh('replica-1', ['x'], 1000);
      clock.advance(600);
      expect(await store.sweepExpired()).toBeGreaterThanOrEqual(1);
      const [after] = await store.presenceOf(tenant, ['agent:a', 'user:nobody']);
      expect(after).toMatchObject({ status: 'OFFLINE', connections: 0, chosenStatus: 'BUSY' });
      expect((await store.presenceOf(tenant, ['user:nobody']))[0]).toMatchObject({ status: 'OFFLINE', changedAt: null });
      expect(await store.online(tenant)).toEqual([]);
    });
  });
});
