// Thin GraphQL layer: check scopes and who may see or do what in a channel, validate arguments,
// call the store; subscriptions are event streams that also count the caller as present.
import type { DomainEvent } from '../../runtime/events.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import { domainError, notFound } from '../../runtime/errors.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { intInRange } from '../../runtime/validate.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import type { CollaborationContext } from './context.ts';
import {
  CHANNEL_EVENT_KIND,
  callerRef,
  chosenStatus,
  clientMessageId,
  historyPage,
  isAdmin,
  keyOf,
  mentions,
  MessagePosted,
  normaliseParts,
  notParticipant,
  ParticipantJoined,
  ParticipantLeft,
  participantInput,
  PresenceChanged,
  refOf,
  title,
  type ChannelEventKind,
  type ParticipantKey,
  type ParticipantRef,
  type ParticipantRole,
  type PresenceStatus,
} from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import type { ChannelRow, MessageEventPayload, MessageRow, ParticipantEventPayload, PresenceEventPayload, PresenceRow } from './store/rows.ts';

export interface MessageAddedEventRow {
  channelId: string;
  message: MessageRow;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

export interface ChannelEventRow {
  kind: ChannelEventKind;
  channelId: string;
  participant: ParticipantRef;
  role: ParticipantRole | null;
  message: MessageRow | null;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

export interface PresenceChangedEventRow {
  presence: PresenceRow;
  previousStatus: PresenceStatus;
  occurredAt: string;
  eventId: string;
  sequence: number;
}

// Defence in depth: the gateway already removed what the caller's scopes do not allow.
function reading(ctx: CollaborationContext): CollaborationContext {
  requireScopes(ctx.identity, [['collaboration:read']]);
  return ctx;
}

function writing(ctx: CollaborationContext): CollaborationContext {
  requireScopes(ctx.identity, [['collaboration:write']]);
  return ctx;
}

const me = (ctx: CollaborationContext): ParticipantKey => keyOf(callerRef(ctx.identity));

/** Task and workflow run channels are the tenant's; direct and group ones their participants' (and admins'). */
async function mayRead(ctx: CollaborationContext, channel: ChannelRow): Promise<boolean> {
  if (channel.kind === 'TASK' || channel.kind === 'WORKFLOW_RUN' || isAdmin(ctx.identity)) return true;
  return ctx.store.isParticipant(ctx.tenantId, channel.id, me(ctx));
}

async function readable(ctx: CollaborationContext, channel: ChannelRow | null): Promise<ChannelRow | null> {
  return channel && (await mayRead(ctx, channel)) ? channel : null;
}

/** The channel, or NOT_FOUND when there is none the caller may read. */
async function channelFor(ctx: CollaborationContext, id: string, argument = 'channelId'): Promise<ChannelRow> {
  const channelId = parseId(id, argument);
  const channel = await readable(ctx, await ctx.store.getChannel(ctx.tenantId, channelId));
  if (!channel) throw notFound('Channel', channelId);
  return channel;
}

async function requireOwner(ctx: CollaborationContext, channel: ChannelRow): Promise<void> {
  if (isAdmin(ctx.identity)) return;
  const mine = await ctx.store.participant(ctx.tenantId, channel.id, me(ctx));
  if (mine?.role !== 'OWNER') throw notParticipant(channel.id, 'Only an owner (or an admin) manages participants');
}

async function openSubjectChannel(ctx: CollaborationContext, kind: 'TASK' | 'WORKFLOW_RUN', id: string): Promise<ChannelRow> {
  const caller = me(ctx);
  const subjectKey = `${kind === 'TASK' ? 'task' : 'run'}:${id}`;
  // Asked only before the first open: an existing channel's subject existed.
  if (!(await ctx.store.channelBySubject(ctx.tenantId, subjectKey)))
    await ctx.subjects.assertExists({ tenantId: ctx.tenantId, onBehalfOf: ctx.identity.subject, requestId: ctx.requestId }, kind, id);
  const { channel, created } = await ctx.store.createChannel(ctx.tenantId, {
    kind,
    title: null,
    taskId: kind === 'TASK' ? id : null,
    workflowRunId: kind === 'WORKFLOW_RUN' ? id : null,
    subjectKey,
    owner: caller,
    others: [],
  });
  if (created || (await ctx.store.isParticipant(ctx.tenantId, channel.id, caller))) return channel;
  await ctx.store.join(ctx.tenantId, channel.id, caller, 'MEMBER');
  return (await ctx.store.getChannel(ctx.tenantId, channel.id)) ?? channel;
}

function messageAdded(event: DomainEvent): MessageAddedEventRow {
  const payload = event.payload as MessageEventPayload;
  return { channelId: payload.channelId, message: payload.message, occurredAt: event.occurredAt, ...eventIdentity(event) };
}

/** Messages of the caller's channels (by others) and those mentioning the caller; membership is cached per stream and follows joins and leaves. */
function addressedTo(ctx: CollaborationContext, caller: ParticipantKey) {
  const member = new Map<string, boolean>();
  return async (event: DomainEvent): Promise<boolean> => {
    if (event.type !== MessagePosted) {
      const p = event.payload as ParticipantEventPayload;
      if (p.participant === caller) member.set(p.channelId, event.type === ParticipantJoined);
      return false;
    }
    const { message } = event.payload as MessageEventPayload;
    if (message.sender === caller) return false;
    if (message.mentions.includes(caller)) return true;
    let known = member.get(message.channelId);
    if (known === undefined) {
      known = await ctx.store.isParticipant(ctx.tenantId, message.channelId, caller);
      member.set(message.channelId, known);
    }
    return known;
  };
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,
  Query: {
    channel: async (_parent, { id }, ctx) => readable(reading(ctx), await ctx.store.getChannel(ctx.tenantId, parseId(id, 'id'))),
    channels: (_parent, { kind, first, after }, ctx) => reading(ctx).store.listChannels(ctx.tenantId, me(ctx), kind ?? null, pageRequest({ first, after })),
    message: async (_parent, { id }, ctx) => {
      const message = await reading(ctx).store.getMessage(ctx.tenantId, parseId(id, 'id'));
      if (!message) return null;
      return (await readable(ctx, await ctx.store.getChannel(ctx.tenantId, message.channelId))) ? message : null;
    },
    onlineParticipants: (_parent, { first }, ctx) => reading(ctx).store.online(ctx.tenantId, intInRange(first ?? 100, 'first', 1, 1000)),
    presence: (_parent, { participants }, ctx) => {
      if (participants.length > 1000) throw domainError('BAD_USER_INPUT', 'participants must have at most 1000 items', { field: 'participants' });
      return reading(ctx).store.presenceOf(
        ctx.tenantId,
        participants.map((p, i) => keyOf(participantInput(p, `participants[${i}]`))),
      );
    },
  },
  Mutation: {
    createChannel: async (_parent, args, ctx) => {
      const { input } = args;
      writing(ctx);
      if (input.kind !== 'DIRECT' && input.kind !== 'GROUP')
        throw domainError('BAD_USER_INPUT', 'kind must be DIRECT or GROUP; open task and workflow run channels with openTaskChannel / openWorkflowRunChannel', {
          field: 'kind',
        });
      const caller = me(ctx);
      if (input.participants.length > ctx.store.limits.participantsPerChannel)
        throw domainError('BAD_USER_INPUT', `participants must have at most ${ctx.store.limits.participantsPerChannel} items`, { field: 'participants' });
      const others = input.participants.map((p, i) => ({
        key: keyOf(participantInput(p, `participants[${i}]`)),
        role: (p.role ?? 'MEMBER') as ParticipantRole,
      }));
      let subjectKey: string | null = null;
      if (input.kind === 'DIRECT') {
        const other = others.filter((o) => o.key !== caller);
        if (other.length !== 1 || others.length !== 1)
          throw domainError('BAD_USER_INPUT', 'a DIRECT channel has exactly one other participant', { field: 'participants' });
        subjectKey = `direct:${[caller, other[0]!.key].sort().join('|')}`;
      }
      const { channel } = await ctx.store.createChannel(
        ctx.tenantId,
        { kind: input.kind, title: title(input.title), taskId: null, workflowRunId: null, subjectKey, owner: caller, others },
        idempotentRequest(ctx, 'createChannel', args),
      );
      return channel;
    },
    openTaskChannel: (_parent, { taskId }, ctx) => openSubjectChannel(writing(ctx), 'TASK', parseId(taskId, 'taskId')),
    openWorkflowRunChannel: (_parent, { workflowRunId }, ctx) => openSubjectChannel(writing(ctx), 'WORKFLOW_RUN', parseId(workflowRunId, 'workflowRunId')),
    joinChannel: async (_parent, { channelId, role }, ctx) => {
      const channel = await channelFor(writing(ctx), channelId);
      const caller = me(ctx);
      const admin = isAdmin(ctx.identity);
      if (channel.kind !== 'TASK' && channel.kind !== 'WORKFLOW_RUN' && !admin)
        throw notParticipant(channel.id, 'Direct and group channels are joined by an owner adding you, not');
      if (role === 'OWNER' && !admin) throw notParticipant(channel.id, 'Only an admin joins as OWNER');
      const current = await ctx.store.participant(ctx.tenantId, channel.id, caller);
      // Joining again changes nothing: roles change through an owner's addParticipant.
      if (current) return current;
      return ctx.store.join(ctx.tenantId, channel.id, caller, role ?? 'MEMBER');
    },
    leaveChannel: async (_parent, { channelId }, ctx) => writing(ctx).store.leave(ctx.tenantId, parseId(channelId, 'channelId'), me(ctx)),
    addParticipant: async (_parent, { channelId, participant }, ctx) => {
      const channel = await channelFor(writing(ctx), channelId);
      await requireOwner(ctx, channel);
      if (channel.kind === 'DIRECT')
        throw domainError('BAD_USER_INPUT', 'a DIRECT channel keeps its two participants; create a GROUP channel', { field: 'channelId' });
      return ctx.store.join(ctx.tenantId, channel.id, keyOf(participantInput(participant, 'participant')), participant.role ?? 'MEMBER');
    },
    removeParticipant: async (_parent, { channelId, participant }, ctx) => {
      const channel = await channelFor(writing(ctx), channelId);
      const key = keyOf(participantInput(participant, 'participant'));
      if (key !== me(ctx)) await requireOwner(ctx, channel);
      return ctx.store.leave(ctx.tenantId, channel.id, key);
    },
    sendMessage: async (_parent, args, ctx) => {
      const { input } = args;
      const channel = await channelFor(writing(ctx), input.channelId, 'input.channelId');
      const { parts, json } = normaliseParts(input.parts, ctx.store.limits, 'input.parts');
      return ctx.store.send(
        ctx.tenantId,
        {
          channelId: channel.id,
          sender: me(ctx),
          clientMessageId: clientMessageId(input.clientMessageId),
          parts,
          partsJson: json,
          replyToId: input.replyToId == null ? null : parseId(input.replyToId, 'input.replyToId'),
          mentions: mentions(input.mentions),
          autoJoin: channel.kind === 'TASK' || channel.kind === 'WORKFLOW_RUN',
        },
        idempotentRequest(ctx, 'sendMessage', args),
      );
    },
    editMessage: async (_parent, { id, parts, expectedVersion }, ctx) => {
      const normalised = normaliseParts(parts, writing(ctx).store.limits);
      const caller = me(ctx);
      return ctx.store.change(
        ctx.tenantId,
        parseId(id, 'id'),
        { kind: 'edit', parts: normalised.parts, partsJson: normalised.json, expectedVersion: expectedVersion ?? null },
        (message) => {
          if (message.sender !== caller) throw notParticipant(message.channelId, 'Only the sender edits a message');
        },
        caller,
      );
    },
    deleteMessage: async (_parent, { id }, ctx) => {
      const caller = me(writing(ctx));
      const admin = isAdmin(ctx.identity);
      return ctx.store.change(
        ctx.tenantId,
        parseId(id, 'id'),
        { kind: 'delete' },
        (message, actor) => {
          if (message.sender !== caller && actor?.role !== 'OWNER' && !admin)
            throw notParticipant(message.channelId, 'Only the sender or an owner deletes a message');
        },
        caller,
      );
    },
    markRead: async (_parent, { channelId, sequence }, ctx) => {
      const id = parseId(channelId, 'channelId');
      if (!Number.isInteger(sequence) || sequence < 0) throw domainError('BAD_USER_INPUT', 'sequence must be an integer >= 0', { field: 'sequence' });
      await writing(ctx).store.markRead(ctx.tenantId, id, me(ctx), sequence);
      return (await ctx.store.getChannel(ctx.tenantId, id)) as ChannelRow;
    },
    setTyping: async (_parent, { channelId }, ctx) => {
      const channel = await channelFor(writing(ctx), channelId);
      const caller = me(ctx);
      if (!(await ctx.store.isParticipant(ctx.tenantId, channel.id, caller))) throw notParticipant(channel.id, 'Only participants type');
      if (!ctx.typing.allow(`${ctx.tenantId}\n${channel.id}\n${caller}`, ctx.store.now())) return false;
      await ctx.store.typing(ctx.tenantId, channel.id, caller);
      return true;
    },
    setPresence: (_parent, { status }, ctx) => writing(ctx).store.setChosenStatus(ctx.tenantId, me(ctx), chosenStatus(status)),
    heartbeat: async (_parent, { status }, ctx) => {
      if (status != null) await writing(ctx).store.setChosenStatus(ctx.tenantId, me(ctx), chosenStatus(status));
      return writing(ctx).presence.heartbeat(ctx.tenantId, me(ctx));
    },
  },
  Subscription: {
    messageAdded: {
      subscribe: async (_parent, { channelId, afterSequence }, ctx) => {
        const channel = await channelFor(reading(ctx), channelId);
        const stream = await eventStreamsOf(ctx).stream({
          types: [MessagePosted],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(afterSequence),
          filter: (event) => (event.payload as MessageEventPayload).channelId === channel.id,
        });
        return ctx.presence.track(ctx.tenantId, me(ctx), stream);
      },
      resolve: (event: DomainEvent) => messageAdded(event),
    },
    channelEvents: {
      subscribe: async (_parent, { channelId, afterSequence }, ctx) => {
        const channel = await channelFor(reading(ctx), channelId);
        const stream = await eventStreamsOf(ctx).stream({
          types: Object.keys(CHANNEL_EVENT_KIND),
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(afterSequence),
          filter: (event) => (event.payload as { channelId: string }).channelId === channel.id,
        });
        return ctx.presence.track(ctx.tenantId, me(ctx), stream);
      },
      resolve: (event: DomainEvent): ChannelEventRow => {
        const payload = event.payload as Partial<MessageEventPayload> & Partial<ParticipantEventPayload> & { channelId: string };
        const message = payload.message ?? null;
        return {
          kind: CHANNEL_EVENT_KIND[event.type] ?? 'JOINED',
          channelId: payload.channelId,
          participant: refOf(message ? message.sender : (payload.participant as string)),
          role: payload.role ?? null,
          message,
          occurredAt: event.occurredAt,
          ...eventIdentity(event),
        };
      },
    },
    myMessages: {
      subscribe: async (_parent, { afterSequence }, ctx) => {
        const caller = me(reading(ctx));
        const stream = await eventStreamsOf(ctx).stream({
          types: [MessagePosted, ParticipantJoined, ParticipantLeft],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(afterSequence),
          filter: addressedTo(ctx, caller),
        });
        return ctx.presence.track(ctx.tenantId, caller, stream);
      },
      resolve: (event: DomainEvent) => messageAdded(event),
    },
    presenceChanged: {
      subscribe: async (_parent, { channelId, afterSequence }, ctx) => {
        const channel = channelId == null ? null : await channelFor(reading(ctx), channelId);
        reading(ctx);
        const stream = await eventStreamsOf(ctx).stream({
          types: [PresenceChanged],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(afterSequence),
          filter: (event) =>
            channel === null || ctx.store.isParticipant(ctx.tenantId, channel.id, (event.payload as PresenceEventPayload).presence.participant),
        });
        return ctx.presence.track(ctx.tenantId, me(ctx), stream);
      },
      resolve: (event: DomainEvent): PresenceChangedEventRow => {
        const payload = event.payload as PresenceEventPayload;
        return { presence: payload.presence, previousStatus: payload.previousStatus, occurredAt: event.occurredAt, ...eventIdentity(event) };
      },
    },
  },
  Channel: {
    participants: (channel, _args, ctx) => ctx.store.participants(ctx.tenantId, channel.id),
    messages: (channel, { first, after, last, before, threadId }, ctx) =>
      ctx.store.messages(ctx.tenantId, channel.id, historyPage({ first, after, last, before }), threadId == null ? null : parseId(threadId, 'threadId')),
    myRole: async (channel, _args, ctx) => (await ctx.store.participant(ctx.tenantId, channel.id, me(ctx)))?.role ?? null,
    myLastReadSequence: async (channel, _args, ctx) => (await ctx.store.participant(ctx.tenantId, channel.id, me(ctx)))?.lastReadSequence ?? 0,
    unreadCount: async (channel, _args, ctx) => {
      const mine = await ctx.store.participant(ctx.tenantId, channel.id, me(ctx));
      return mine ? ctx.store.unreadCount(ctx.tenantId, channel.id, mine.key, mine.lastReadSequence) : 0;
    },
  },
  Participant: {
    kind: (p) => refOf(p.key).kind,
    id: (p) => refOf(p.key).id,
    agent: (p) => {
      const ref = refOf(p.key);
      return ref.kind === 'AGENT' ? { id: ref.id } : null;
    },
    presence: async (p, _args, ctx) => (await ctx.store.presenceOf(ctx.tenantId, [p.key]))[0] as PresenceRow,
  },
  ParticipantRef: {
    agent: (ref) => (ref.kind === 'AGENT' ? { id: ref.id } : null),
  },
  Message: {
    channel: async (message, _args, ctx) => readable(ctx, await ctx.store.getChannel(ctx.tenantId, message.channelId)),
    sender: (message) => refOf(message.sender),
    mentions: (message) => message.mentions.map(refOf),
    history: (message, _args, ctx) => ctx.store.history(ctx.tenantId, message),
  },
  MessagePart: {
    text: (part) => (part.kind === 'TEXT' ? part.text : null),
    data: (part) => (part.kind === 'DATA' ? part.data : null),
    file: (part) => (part.kind === 'FILE' ? part.file : null),
    metadata: (part) => part.metadata ?? null,
  },
  Presence: {
    participant: (presence) => refOf(presence.participant),
  },
  Task: {
    channel: async (task, _args, ctx) => readable(reading(ctx), await ctx.store.channelBySubject(ctx.tenantId, `task:${task.id}`)),
  },
  WorkflowRun: {
    channel: async (run, _args, ctx) => readable(reading(ctx), await ctx.store.channelBySubject(ctx.tenantId, `run:${run.id}`)),
  },
  Agent: {
    presence: async (agent, _args, ctx) => (await reading(ctx).store.presenceOf(ctx.tenantId, [`agent:${agent.id}`]))[0] as PresenceRow,
  },
};
