// The collaboration subgraph's tables, as kysely sees them (migrations.ts creates them).
import type { ChannelKind, ParticipantRole, PresenceStatus } from '../domain.ts';

export interface ChannelsTable {
  id: string;
  tenant_id: string;
  kind: ChannelKind;
  title: string | null;
  task_id: string | null;
  workflow_run_id: string | null;
  subject_key: string | null;
  last_sequence: number;
  participant_count: number;
  created_at: string;
}

export interface ParticipantsTable {
  tenant_id: string;
  channel_id: string;
  participant: string;
  role: ParticipantRole;
  joined_at: string;
  last_read_sequence: number;
}

export interface MessagesTable {
  id: string;
  tenant_id: string;
  channel_id: string;
  sequence: number;
  sender: string;
  client_message_id: string | null;
  parts: string;
  reply_to_id: string | null;
  thread_id: string;
  mentions: string;
  version: number;
  edited_at: string | null;
  deleted_at: string | null;
  created_at: string;
}

export interface MessageVersionsTable {
  tenant_id: string;
  message_id: string;
  version: number;
  parts: string;
  recorded_at: string;
}

export interface PresenceConnectionsTable {
  id: string;
  tenant_id: string;
  participant: string;
  replica_id: string;
  expires_at: string;
}

export interface PresenceTable {
  tenant_id: string;
  participant: string;
  chosen_status: PresenceStatus;
  status: PresenceStatus;
  connections: number;
  changed_at: string;
}

export interface CollaborationDB {
  channels: ChannelsTable;
  channel_participants: ParticipantsTable;
  messages: MessagesTable;
  message_versions: MessageVersionsTable;
  presence_connections: PresenceConnectionsTable;
  presence: PresenceTable;
}
