// What the store returns and takes: rows decoded from the tables, drafts of writes, event payloads.
import type { Selectable } from 'kysely';
import type { ChannelKind, MessagePart, ParticipantKey, ParticipantRole, PresenceStatus } from '../domain.ts';
import type { ChannelsTable, MessagesTable, ParticipantsTable, PresenceTable } from './tables.ts';

export interface ChannelRow {
  id: string;
  tenantId: string;
  kind: ChannelKind;
  title: string | null;
  taskId: string | null;
  workflowRunId: string | null;
  lastSequence: number;
  participantCount: number;
  createdAt: string;
}

export interface ParticipantRow {
  tenantId: string;
  channelId: string;
  key: ParticipantKey;
  role: ParticipantRole;
  joinedAt: string;
  lastReadSequence: number;
}

export interface MessageRow {
  id: string;
  tenantId: string;
  channelId: string;
  sequence: number;
  sender: ParticipantKey;
  clientMessageId: string | null;
  parts: MessagePart[];
  replyToId: string | null;
  threadId: string;
  mentions: ParticipantKey[];
  version: number;
  editedAt: string | null;
  deletedAt: string | null;
  createdAt: string;
}

export interface MessageVersionRow {
  version: number;
  parts: MessagePart[];
  recordedAt: string;
}

export interface PresenceRow {
  tenantId: string;
  participant: ParticipantKey;
  status: PresenceStatus;
  chosenStatus: PresenceStatus;
  connections: number;
  changedAt: string | null;
}

export interface MessageConnection {
  edges: { cursor: string; node: MessageRow }[];
  nodes: MessageRow[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/** What the events of this subgraph carry (payload). */
export interface MessageEventPayload extends Record<string, unknown> {
  channelId: string;
  message: MessageRow;
}
export interface ParticipantEventPayload extends Record<string, unknown> {
  channelId: string;
  participant: ParticipantKey;
  role: ParticipantRole | null;
}
export interface PresenceEventPayload extends Record<string, unknown> {
  presence: PresenceRow;
  previousStatus: PresenceStatus;
}

/** An entity of another subgraph joined by its id (Task, WorkflowRun, Agent). */
export interface EntityRef {
  id: string;
}

export interface ChannelDraft {
  kind: ChannelKind;
  title: string | null;
  taskId: string | null;
  workflowRunId: string | null;
  /** At most one channel per key and tenant (direct pairs, tasks, runs); null for a group. */
  subjectKey: string | null;
  owner: ParticipantKey;
  others: { key: ParticipantKey; role: ParticipantRole }[];
}

export interface MessageDraft {
  channelId: string;
  sender: ParticipantKey;
  clientMessageId: string | null;
  parts: MessagePart[];
  partsJson: string;
  replyToId: string | null;
  mentions: ParticipantKey[];
  /** TASK and WORKFLOW_RUN channels: a sender who is not a participant joins as MEMBER. */
  autoJoin: boolean;
}

export function decodeChannel(r: Selectable<ChannelsTable>): ChannelRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    kind: r.kind,
    title: r.title,
    taskId: r.task_id,
    workflowRunId: r.workflow_run_id,
    lastSequence: Number(r.last_sequence),
    participantCount: Number(r.participant_count),
    createdAt: r.created_at,
  };
}

export function decodeParticipant(r: Selectable<ParticipantsTable>): ParticipantRow {
  return {
    tenantId: r.tenant_id,
    channelId: r.channel_id,
    key: r.participant,
    role: r.role,
    joinedAt: r.joined_at,
    lastReadSequence: Number(r.last_read_sequence),
  };
}

export function decodeMessage(r: Selectable<MessagesTable>): MessageRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    channelId: r.channel_id,
    sequence: Number(r.sequence),
    sender: r.sender,
    clientMessageId: r.client_message_id,
    parts: JSON.parse(r.parts) as MessagePart[],
    replyToId: r.reply_to_id,
    threadId: r.thread_id,
    mentions: JSON.parse(r.mentions) as ParticipantKey[],
    version: Number(r.version),
    editedAt: r.edited_at,
    deletedAt: r.deleted_at,
    createdAt: r.created_at,
  };
}

export function decodePresence(r: Selectable<PresenceTable>): PresenceRow {
  return {
    tenantId: r.tenant_id,
    participant: r.participant,
    status: r.status,
    chosenStatus: r.chosen_status,
    connections: Number(r.connections),
    changedAt: r.changed_at,
  };
}
