// All SQL of the collaboration subgraph. Every statement is scoped to a tenant; every write runs
// in one transaction with its outbox events. A message's channel sequence is taken from its
// channel row inside the transaction that inserts it, so sequences have no gaps and commit in
// channel order (PostgreSQL: the row is locked until commit; SQLite: one writer).
import type { Kysely, Transaction } from 'kysely';
import type { Database, Dialect } from '../../runtime/db.ts';
import { nowIso } from '../../runtime/db.ts';
import { conflict, notFound } from '../../runtime/errors.ts';
import { Idempotency, type IdempotentRequest, replayById } from '../../runtime/idempotency.ts';
import { newId } from '../../runtime/ids.ts';
import type { Logger } from '../../runtime/logger.ts';
import { toConnection, type Connection, type Cursor } from '../../runtime/pagination.ts';
import { inTransaction, type Emit, type EventSink } from '../../runtime/unit-of-work.ts';
import {
  ChannelCreated,
  channelFull,
  encodeSequenceCursor,
  MessageDeleted,
  MessageEdited,
  MessagePosted,
  notParticipant,
  ParticipantJoined,
  ParticipantLeft,
  ParticipantTyping,
  PresenceChanged,
  rateLimited,
  type ChannelKind,
  type HistoryPage,
  type Limits,
  type MessagePart,
  type ParticipantKey,
  type ParticipantRole,
  type PresenceStatus,
} from './domain.ts';
import {
  type ChannelDraft,
  type ChannelRow,
  decodeChannel,
  decodeMessage,
  decodeParticipant,
  decodePresence,
  type MessageConnection,
  type MessageDraft,
  type MessageEventPayload,
  type MessageRow,
  type MessageVersionRow,
  type ParticipantEventPayload,
  type ParticipantRow,
  type PresenceEventPayload,
  type PresenceRow,
} from './store/rows.ts';
import type { CollaborationDB } from './store/tables.ts';

type Db = Kysely<CollaborationDB> | Transaction<CollaborationDB>;

export class CollaborationStore {
  constructor(
    private readonly database: Database<CollaborationDB>,
    private readonly bus: EventSink,
    private readonly logger: Logger,
    readonly limits: Limits,
    private readonly clock: () => number = Date.now,
    private readonly idempotency: Idempotency = new Idempotency({ ttlSeconds: 86_400 }),
  ) {}

  now(): number {
    return this.clock();
  }

  get dialect(): Dialect {
    return this.database.dialect;
  }

  private tx<T>(fn: (trx: Transaction<CollaborationDB>, emit: Emit) => Promise<T>): Promise<T> {
    return inTransaction(this.database, this.bus, this.logger, fn);
  }

  // --- Channels --------------------------------------------------------------------------------

  async getChannel(tenantId: string, id: string, db: Db = this.database.db): Promise<ChannelRow | null> {
    const row = await db.selectFrom('channels').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeChannel(row) : null;
  }

  async channelBySubject(tenantId: string, subjectKey: string): Promise<ChannelRow | null> {
    const row = await this.database.db
      .selectFrom('channels')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('subject_key', '=', subjectKey)
      .executeTakeFirst();
    return row ? decodeChannel(row) : null;
  }

  /** The channels `member` is in (every channel of the tenant when null), newest first. */
  async listChannels(
    tenantId: string,
    member: ParticipantKey | null,
    kind: ChannelKind | null,
    page: { first: number; limit: number; after: Cursor | null },
  ): Promise<Connection<ChannelRow>> {
    const db = this.database.db;
    const base = () => {
      let q = db.selectFrom('channels').where('channels.tenant_id', '=', tenantId);
      if (member !== null)
        q = q.where(
          'channels.id',
          'in',
          db.selectFrom('channel_participants').select('channel_id').where('tenant_id', '=', tenantId).where('participant', '=', member),
        );
      if (kind !== null) q = q.where('channels.kind', '=', kind);
      return q;
    };
    let query = base().selectAll();
    const after = page.after;
    if (after)
      query = query.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    const { n } = await base()
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return toConnection(rows.map(decodeChannel), page, Number(n));
  }

  async participants(tenantId: string, channelId: string): Promise<ParticipantRow[]> {
    const rows = await this.database.db
      .selectFrom('channel_participants')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('channel_id', '=', channelId)
      .orderBy('joined_at')
      .orderBy('participant')
      .execute();
    return rows.map(decodeParticipant);
  }

  async participant(tenantId: string, channelId: string, key: ParticipantKey, db: Db = this.database.db): Promise<ParticipantRow | null> {
    const row = await db
      .selectFrom('channel_participants')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('channel_id', '=', channelId)
      .where('participant', '=', key)
      .executeTakeFirst();
    return row ? decodeParticipant(row) : null;
  }

  /**
   * Creates the channel with its owner and participants; a channel with the same subject key
   * already there is answered instead (its `created` false). A keyed repeat answers the first.
   */
  async createChannel(tenantId: string, draft: ChannelDraft, request?: IdempotentRequest): Promise<{ channel: ChannelRow; created: boolean }> {
    if (draft.subjectKey !== null) {
      const existing = await this.channelBySubject(tenantId, draft.subjectKey);
      if (existing) return { channel: existing, created: false };
    }
    const attempt = () =>
      this.idempotency.run(request, (once) =>
        this.tx((trx, emit) =>
          once(
            trx,
            this.clock(),
            () => this.insertChannel(trx, emit, tenantId, draft),
            replayById((id) => this.getChannel(tenantId, id, trx)),
          ),
        ),
      );
    try {
      return { channel: await attempt(), created: true };
    } catch (err) {
      // Two first opens of the same task's channel at once: the second finds the first's.
      if (draft.subjectKey !== null) {
        const existing = await this.channelBySubject(tenantId, draft.subjectKey);
        if (existing) return { channel: existing, created: false };
      }
      throw err;
    }
  }

  private async insertChannel(trx: Transaction<CollaborationDB>, emit: Emit, tenantId: string, draft: ChannelDraft): Promise<ChannelRow> {
    const now = nowIso(this.clock);
    const members = [{ key: draft.owner, role: 'OWNER' as ParticipantRole }, ...draft.others.filter((o) => o.key !== draft.owner)];
    const unique = [...new Map(members.map((m) => [m.key, m])).values()];
    if (unique.length > this.limits.participantsPerChannel) throw channelFull('(new)', this.limits.participantsPerChannel);
    const row = await trx
      .insertInto('channels')
      .values({
        id: newId(),
        tenant_id: tenantId,
        kind: draft.kind,
        title: draft.title,
        task_id: draft.taskId,
        workflow_run_id: draft.workflowRunId,
        subject_key: draft.subjectKey,
        last_sequence: 0,
        participant_count: unique.length,
        created_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const channel = decodeChannel(row);
    for (let i = 0; i < unique.length; i += 200) {
      await trx
        .insertInto('channel_participants')
        .values(
          unique
            .slice(i, i + 200)
            .map((m) => ({ tenant_id: tenantId, channel_id: channel.id, participant: m.key, role: m.role, joined_at: now, last_read_sequence: 0 })),
        )
        .execute();
    }
    emit({ type: ChannelCreated, tenantId, subjectId: channel.id, occurredAt: now, payload: { channelId: channel.id, kind: channel.kind } });
    for (const m of unique) emitParticipant(emit, ParticipantJoined, tenantId, channel.id, m.key, m.role, now);
    return channel;
  }

  /** Adds the participant, or changes their role; emits JOINED unless nothing changed. */
  async join(tenantId: string, channelId: string, key: ParticipantKey, role: ParticipantRole): Promise<ParticipantRow> {
    return this.tx(async (trx, emit) => this.joinIn(trx, emit, tenantId, channelId, key, role));
  }

  private async joinIn(
    trx: Transaction<CollaborationDB>,
    emit: Emit,
    tenantId: string,
    channelId: string,
    key: ParticipantKey,
    role: ParticipantRole,
  ): Promise<ParticipantRow> {
    const channel = await this.lockChannel(trx, tenantId, channelId);
    const now = nowIso(this.clock);
    const current = await this.participant(tenantId, channelId, key, trx);
    if (current) {
      if (current.role === role) return current;
      await trx.updateTable('channel_participants').set({ role }).where('channel_id', '=', channelId).where('participant', '=', key).execute();
      emitParticipant(emit, ParticipantJoined, tenantId, channelId, key, role, now);
      return { ...current, role };
    }
    if (channel.participantCount >= this.limits.participantsPerChannel) throw channelFull(channelId, this.limits.participantsPerChannel);
    await trx
      .insertInto('channel_participants')
      .values({ tenant_id: tenantId, channel_id: channelId, participant: key, role, joined_at: now, last_read_sequence: 0 })
      .execute();
    await trx
      .updateTable('channels')
      .set({ participant_count: channel.participantCount + 1 })
      .where('id', '=', channelId)
      .execute();
    emitParticipant(emit, ParticipantJoined, tenantId, channelId, key, role, now);
    return { tenantId, channelId, key, role, joinedAt: now, lastReadSequence: 0 };
  }

  /** Removes the participant; false when they were not one. */
  async leave(tenantId: string, channelId: string, key: ParticipantKey): Promise<boolean> {
    return this.tx(async (trx, emit) => {
      const channel = await this.lockChannel(trx, tenantId, channelId);
      const result = await trx.deleteFrom('channel_participants').where('channel_id', '=', channelId).where('participant', '=', key).executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) return false;
      await trx
        .updateTable('channels')
        .set({ participant_count: channel.participantCount - 1 })
        .where('id', '=', channelId)
        .execute();
      emitParticipant(emit, ParticipantLeft, tenantId, channelId, key, null, nowIso(this.clock));
      return true;
    });
  }

  /** The channel row, locked for the transaction on PostgreSQL (SQLite has one writer). */
  private async lockChannel(trx: Transaction<CollaborationDB>, tenantId: string, channelId: string): Promise<ChannelRow> {
    const row = await trx
      .selectFrom('channels')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', channelId)
      .$if(this.database.dialect === 'postgres', (q) => q.forUpdate())
      .executeTakeFirst();
    if (!row) throw notFound('Channel', channelId);
    return decodeChannel(row);
  }

  // --- Messages --------------------------------------------------------------------------------

  /**
   * Posts the message with the channel's next sequence. A repeat of a clientMessageId answers
   * the first message (CONFLICT when its parts differ); an observer, a non-participant of a
   * direct or group channel, a full channel and a sender over the rate limit are refused.
   */
  async send(tenantId: string, draft: MessageDraft, request?: IdempotentRequest): Promise<MessageRow> {
    return this.idempotency.run(request, (once) =>
      this.tx((trx, emit) =>
        once(
          trx,
          this.clock(),
          () => this.insertMessage(trx, emit, tenantId, draft),
          replayById((id) => this.getMessage(tenantId, id, trx)),
        ),
      ),
    );
  }

  private async insertMessage(trx: Transaction<CollaborationDB>, emit: Emit, tenantId: string, draft: MessageDraft): Promise<MessageRow> {
    const channel = await this.lockChannel(trx, tenantId, draft.channelId);
    if (draft.clientMessageId !== null) {
      const existing = await trx
        .selectFrom('messages')
        .selectAll()
        .where('channel_id', '=', channel.id)
        .where('sender', '=', draft.sender)
        .where('client_message_id', '=', draft.clientMessageId)
        .executeTakeFirst();
      if (existing) {
        const first = decodeMessage(existing);
        if (existing.version === 1 && existing.parts !== draft.partsJson)
          throw conflict(`clientMessageId "${draft.clientMessageId}" was already used for a different message`, {
            clientMessageId: draft.clientMessageId,
            messageId: first.id,
          });
        return first;
      }
    }
    let me = await this.participant(tenantId, channel.id, draft.sender, trx);
    if (!me && draft.autoJoin) me = await this.joinIn(trx, emit, tenantId, channel.id, draft.sender, 'MEMBER');
    if (!me) throw notParticipant(channel.id, 'Only participants send messages');
    if (me.role === 'OBSERVER') throw notParticipant(channel.id, 'An observer does not send messages');
    await this.checkRate(trx, tenantId, draft.sender);
    let threadId: string | null = null;
    if (draft.replyToId !== null) {
      const parent = await trx
        .selectFrom('messages')
        .select(['thread_id'])
        .where('tenant_id', '=', tenantId)
        .where('channel_id', '=', channel.id)
        .where('id', '=', draft.replyToId)
        .executeTakeFirst();
      if (!parent) throw notFound('Message', draft.replyToId);
      threadId = parent.thread_id;
    }
    const sequence = channel.lastSequence + 1;
    await trx.updateTable('channels').set({ last_sequence: sequence }).where('id', '=', channel.id).execute();
    const now = nowIso(this.clock);
    const id = newId();
    const row = await trx
      .insertInto('messages')
      .values({
        id,
        tenant_id: tenantId,
        channel_id: channel.id,
        sequence,
        sender: draft.sender,
        client_message_id: draft.clientMessageId,
        parts: draft.partsJson,
        reply_to_id: draft.replyToId,
        thread_id: threadId ?? id,
        mentions: JSON.stringify(draft.mentions),
        version: 1,
        edited_at: null,
        deleted_at: null,
        created_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    // The sender has read their own message.
    await trx
      .updateTable('channel_participants')
      .set({ last_read_sequence: sequence })
      .where('channel_id', '=', channel.id)
      .where('participant', '=', draft.sender)
      .execute();
    const message = decodeMessage(row);
    emitMessage(emit, MessagePosted, message, now);
    return message;
  }

  /** Counted in the database: the limit holds across replicas. */
  private async checkRate(trx: Transaction<CollaborationDB>, tenantId: string, sender: ParticipantKey): Promise<void> {
    const since = nowIso(() => this.clock() - 60_000);
    const recent = await trx
      .selectFrom('messages')
      .select('created_at')
      .where('tenant_id', '=', tenantId)
      .where('sender', '=', sender)
      .where('created_at', '>', since)
      .orderBy('created_at', 'desc')
      .offset(this.limits.messagesPerMinute - 1)
      .limit(1)
      .executeTakeFirst();
    if (recent) {
      const retryAfter = Math.max(1, Math.ceil((Date.parse(recent.created_at) + 60_000 - this.clock()) / 1000));
      throw rateLimited(this.limits.messagesPerMinute, retryAfter);
    }
  }

  async getMessage(tenantId: string, id: string, db: Db = this.database.db): Promise<MessageRow | null> {
    const row = await db.selectFrom('messages').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? decodeMessage(row) : null;
  }

  /**
   * Replaces the parts (edit) or empties them (delete), keeping the replaced version.
   * `authorize` sees the message and the actor's participation before anything changes.
   */
  async change(
    tenantId: string,
    id: string,
    change: { kind: 'edit'; parts: MessagePart[]; partsJson: string; expectedVersion: number | null } | { kind: 'delete' },
    authorize: (message: MessageRow, actor: ParticipantRow | null) => void,
    actor: ParticipantKey,
  ): Promise<MessageRow> {
    return this.tx(async (trx, emit) => {
      const found = await trx.selectFrom('messages').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
      if (!found) throw notFound('Message', id);
      const current = decodeMessage(found);
      authorize(current, await this.participant(tenantId, current.channelId, actor, trx));
      if (current.deletedAt !== null) throw conflict(`Message "${id}" is deleted`, { id });
      if (change.kind === 'edit' && change.expectedVersion !== null && change.expectedVersion !== current.version)
        throw conflict(`Message "${id}" is at version ${current.version}, not the expected ${change.expectedVersion}: reload and retry`, {
          id,
          expectedVersion: change.expectedVersion,
          actualVersion: current.version,
        });
      await trx
        .insertInto('message_versions')
        .values({ tenant_id: tenantId, message_id: id, version: current.version, parts: found.parts, recorded_at: current.editedAt ?? current.createdAt })
        .execute();
      const now = nowIso(this.clock);
      const updated = await trx
        .updateTable('messages')
        .set(
          change.kind === 'edit'
            ? { parts: change.partsJson, edited_at: now, version: current.version + 1 }
            : { parts: '[]', deleted_at: now, version: current.version + 1 },
        )
        .where('id', '=', id)
        .where('version', '=', current.version)
        .returningAll()
        .executeTakeFirst();
      if (!updated) throw conflict(`Message "${id}" changed meanwhile: reload and retry`, { id });
      const message = decodeMessage(updated);
      emitMessage(emit, change.kind === 'edit' ? MessageEdited : MessageDeleted, message, now);
      return message;
    });
  }

  /** The current version first, then the replaced ones. */
  async history(tenantId: string, message: MessageRow): Promise<MessageVersionRow[]> {
    const older = await this.database.db
      .selectFrom('message_versions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('message_id', '=', message.id)
      .orderBy('version', 'desc')
      .execute();
    return [
      { version: message.version, parts: message.parts, recordedAt: message.deletedAt ?? message.editedAt ?? message.createdAt },
      ...older.map((v) => ({ version: Number(v.version), parts: JSON.parse(v.parts) as MessagePart[], recordedAt: v.recorded_at })),
    ];
  }

  /** A page of the channel's messages (or one thread's), oldest first, paged either way by channel sequence. */
  async messages(tenantId: string, channelId: string, page: HistoryPage, threadId: string | null): Promise<MessageConnection> {
    let q = this.database.db.selectFrom('messages').selectAll().where('tenant_id', '=', tenantId).where('channel_id', '=', channelId);
    if (threadId !== null) q = q.where('thread_id', '=', threadId);
    if (page.after !== null) q = q.where('sequence', '>', page.after);
    if (page.before !== null) q = q.where('sequence', '<', page.before);
    const forward = page.direction === 'forward';
    const rows = await q
      .orderBy('sequence', forward ? 'asc' : 'desc')
      .limit(page.count + 1)
      .execute();
    const more = rows.length > page.count;
    const taken = rows.slice(0, page.count).map(decodeMessage);
    const nodes = forward ? taken : taken.reverse();
    const edges = nodes.map((node) => ({ cursor: encodeSequenceCursor(node.sequence), node }));
    return {
      edges,
      nodes,
      pageInfo: {
        hasNextPage: forward ? more : page.before !== null,
        hasPreviousPage: forward ? page.after !== null : more,
        startCursor: edges[0]?.cursor ?? null,
        endCursor: edges[edges.length - 1]?.cursor ?? null,
      },
    };
  }

  async unreadCount(tenantId: string, channelId: string, key: ParticipantKey, lastRead: number): Promise<number> {
    const { n } = await this.database.db
      .selectFrom('messages')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('channel_id', '=', channelId)
      .where('sequence', '>', lastRead)
      .where('sender', '<>', key)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(n);
  }

  /** Moves the read marker forward (never back, never past the last message). */
  async markRead(tenantId: string, channelId: string, key: ParticipantKey, sequence: number): Promise<ParticipantRow> {
    return this.tx(async (trx) => {
      const channel = await this.getChannel(tenantId, channelId, trx);
      if (!channel) throw notFound('Channel', channelId);
      const me = await this.participant(tenantId, channelId, key, trx);
      if (!me) throw notParticipant(channelId, 'Only participants have read markers');
      const target = Math.min(sequence, channel.lastSequence);
      if (target <= me.lastReadSequence) return me;
      await trx
        .updateTable('channel_participants')
        .set({ last_read_sequence: target })
        .where('channel_id', '=', channelId)
        .where('participant', '=', key)
        .execute();
      return { ...me, lastReadSequence: target };
    });
  }

  /** A typing event (nothing stored but the event). */
  async typing(tenantId: string, channelId: string, key: ParticipantKey): Promise<void> {
    await this.tx(async (_trx, emit) => {
      emitParticipant(emit, ParticipantTyping, tenantId, channelId, key, null, nowIso(this.clock));
    });
  }

  /** Whether `key` is a participant of the channel (cheap, for subscription filters). */
  async isParticipant(tenantId: string, channelId: string, key: ParticipantKey): Promise<boolean> {
    return (await this.participant(tenantId, channelId, key)) !== null;
  }

  // --- Presence --------------------------------------------------------------------------------

  /** Registers a live connection of `key` (a subscription, or the heartbeat `hb:<key>`) until `expiresAt`. */
  async connect(tenantId: string, key: ParticipantKey, connectionId: string, replicaId: string, ttlMs: number): Promise<PresenceRow> {
    return this.tx(async (trx, emit) => {
      const expiresAt = nowIso(() => this.clock() + ttlMs);
      const updated = await trx
        .updateTable('presence_connections')
        .set({ expires_at: expiresAt, replica_id: replicaId })
        .where('id', '=', connectionId)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0)
        await trx
          .insertInto('presence_connections')
          .values({ id: connectionId, tenant_id: tenantId, participant: key, replica_id: replicaId, expires_at: expiresAt })
          .execute();
      return this.recompute(trx, emit, tenantId, key);
    });
  }

  /** The connection ended: the participant goes OFFLINE with their last one. */
  async disconnect(tenantId: string, key: ParticipantKey, connectionId: string): Promise<PresenceRow> {
    return this.tx(async (trx, emit) => {
      await trx.deleteFrom('presence_connections').where('id', '=', connectionId).execute();
      return this.recompute(trx, emit, tenantId, key);
    });
  }

  /** Extends every connection this replica serves (one statement, whatever their number). */
  async refresh(replicaId: string, connectionIds: string[], ttlMs: number): Promise<void> {
    if (connectionIds.length === 0) return;
    const expiresAt = nowIso(() => this.clock() + ttlMs);
    await this.database.db.updateTable('presence_connections').set({ expires_at: expiresAt }).where('replica_id', '=', replicaId).execute();
  }

  /** Deletes connections nobody refreshed (a replica that died, a heartbeat that stopped); their participants are recomputed. */
  async sweepExpired(limit = 500): Promise<number> {
    const now = nowIso(this.clock);
    const expired = await this.database.db
      .selectFrom('presence_connections')
      .select(['id', 'tenant_id', 'participant'])
      .where('expires_at', '<=', now)
      .limit(limit)
      .execute();
    if (expired.length === 0) return 0;
    return this.tx(async (trx, emit) => {
      await trx
        .deleteFrom('presence_connections')
        .where(
          'id',
          'in',
          expired.map((e) => e.id),
        )
        .where('expires_at', '<=', now)
        .execute();
      const seen = new Set<string>();
      for (const e of expired) {
        const k = `${e.tenant_id}\n${e.participant}`;
        if (seen.has(k)) continue;
        seen.add(k);
        await this.recompute(trx, emit, e.tenant_id, e.participant);
      }
      return expired.length;
    });
  }

  /** Sets the status shown while connected. */
  async setChosenStatus(tenantId: string, key: ParticipantKey, status: PresenceStatus): Promise<PresenceRow> {
    return this.tx(async (trx, emit) => {
      await this.ensurePresence(trx, tenantId, key);
      await trx.updateTable('presence').set({ chosen_status: status }).where('tenant_id', '=', tenantId).where('participant', '=', key).execute();
      return this.recompute(trx, emit, tenantId, key);
    });
  }

  async presenceOf(tenantId: string, keys: ParticipantKey[]): Promise<PresenceRow[]> {
    if (keys.length === 0) return [];
    const rows = await this.database.db.selectFrom('presence').selectAll().where('tenant_id', '=', tenantId).where('participant', 'in', keys).execute();
    const byKey = new Map(rows.map((r) => [r.participant, decodePresence(r)]));
    return keys.map((k) => byKey.get(k) ?? { tenantId, participant: k, status: 'OFFLINE', chosenStatus: 'ONLINE', connections: 0, changedAt: null });
  }

  async online(tenantId: string, limit = 100): Promise<PresenceRow[]> {
    const rows = await this.database.db
      .selectFrom('presence')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('status', '<>', 'OFFLINE')
      .orderBy('participant')
      .limit(limit)
      .execute();
    return rows.map(decodePresence);
  }

  private async ensurePresence(trx: Transaction<CollaborationDB>, tenantId: string, key: ParticipantKey): Promise<void> {
    await trx
      .insertInto('presence')
      .values({ tenant_id: tenantId, participant: key, chosen_status: 'ONLINE', status: 'OFFLINE', connections: 0, changed_at: nowIso(this.clock) })
      .onConflict((oc) => oc.columns(['tenant_id', 'participant']).doNothing())
      .execute();
  }

  /**
   * The participant's status from their live connections and chosen status; a change is
   * written with a conditional update, so concurrent recomputes (two replicas sweeping) emit it once.
   */
  private async recompute(trx: Transaction<CollaborationDB>, emit: Emit, tenantId: string, key: ParticipantKey): Promise<PresenceRow> {
    await this.ensurePresence(trx, tenantId, key);
    const now = nowIso(this.clock);
    // Locked first: a concurrent connect of the same participant then counts this one's connection.
    const current = await trx
      .selectFrom('presence')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('participant', '=', key)
      .$if(this.database.dialect === 'postgres', (q) => q.forUpdate())
      .executeTakeFirstOrThrow();
    const { n } = await trx
      .selectFrom('presence_connections')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('participant', '=', key)
      .where('expires_at', '>', now)
      .executeTakeFirstOrThrow();
    const connections = Number(n);
    const status: PresenceStatus = connections > 0 ? current.chosen_status : 'OFFLINE';
    const changed = status !== current.status;
    await trx
      .updateTable('presence')
      .set({ status, connections, ...(changed ? { changed_at: now } : {}) })
      .where('tenant_id', '=', tenantId)
      .where('participant', '=', key)
      .execute();
    const row: PresenceRow = {
      tenantId,
      participant: key,
      status,
      chosenStatus: current.chosen_status,
      connections,
      changedAt: changed ? now : current.changed_at,
    };
    if (changed)
      emit({
        type: PresenceChanged,
        tenantId,
        subjectId: key,
        occurredAt: now,
        payload: { presence: row, previousStatus: current.status } satisfies PresenceEventPayload,
      });
    return row;
  }
}

function emitParticipant(
  emit: Emit,
  type: string,
  tenantId: string,
  channelId: string,
  key: ParticipantKey,
  role: ParticipantRole | null,
  occurredAt: string,
): void {
  emit({ type, tenantId, subjectId: channelId, occurredAt, payload: { channelId, participant: key, role } satisfies ParticipantEventPayload });
}

function emitMessage(emit: Emit, type: string, message: MessageRow, occurredAt: string): void {
  emit({
    type,
    tenantId: message.tenantId,
    subjectId: message.channelId,
    occurredAt,
    payload: { channelId: message.channelId, message } satisfies MessageEventPayload,
  });
}
