// The rules of collaboration: who a caller is as a participant, what a valid message is (A2A
// parts), what each role may do, and the limits with their codes. No SQL here (store.ts), no
// GraphQL (resolvers.ts).
import type { GraphQLError } from 'graphql';
import { badInput, domainError } from '../../runtime/errors.ts';
import type { RequestIdentity } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';

export type ChannelKind = 'DIRECT' | 'GROUP' | 'TASK' | 'WORKFLOW_RUN';
export type ParticipantKind = 'AGENT' | 'USER';
export type ParticipantRole = 'OWNER' | 'MEMBER' | 'OBSERVER';
export type PresenceStatus = 'ONLINE' | 'AWAY' | 'BUSY' | 'OFFLINE';
export type ChannelEventKind = 'JOINED' | 'LEFT' | 'EDITED' | 'DELETED' | 'TYPING';

// Event types (the outbox's `type`).
export const ChannelCreated = 'ChannelCreated';
export const ParticipantJoined = 'ParticipantJoined';
export const ParticipantLeft = 'ParticipantLeft';
export const MessagePosted = 'MessagePosted';
export const MessageEdited = 'MessageEdited';
export const MessageDeleted = 'MessageDeleted';
export const ParticipantTyping = 'ParticipantTyping';
export const PresenceChanged = 'PresenceChanged';

/** channelEvents' event types and the kind each one is. */
export const CHANNEL_EVENT_KIND: Record<string, ChannelEventKind> = {
  [ParticipantJoined]: 'JOINED',
  [ParticipantLeft]: 'LEFT',
  [MessageEdited]: 'EDITED',
  [MessageDeleted]: 'DELETED',
  [ParticipantTyping]: 'TYPING',
};

export const MAX_TITLE = 200;
export const MAX_PARTS = 20;
export const MAX_MENTIONS = 50;
export const MAX_CLIENT_MESSAGE_ID = 128;
export const MAX_URI = 2048;
export const DEFAULT_HISTORY_PAGE = 50;
export const MAX_HISTORY_PAGE = 200;

export interface Limits {
  /** Bytes of a message's parts as JSON. */
  messageMaxBytes: number;
  /** Messages one participant may send per minute, across the tenant. */
  messagesPerMinute: number;
  participantsPerChannel: number;
}

/** A participant as the store keys it: `agent:<id>` or `user:<subject>`. */
export type ParticipantKey = string;

export interface ParticipantRef {
  kind: ParticipantKind;
  id: string;
}

export function keyOf(ref: ParticipantRef): ParticipantKey {
  return `${ref.kind === 'AGENT' ? 'agent' : 'user'}:${ref.id}`;
}

export function refOf(key: ParticipantKey): ParticipantRef {
  const i = key.indexOf(':');
  return { kind: key.slice(0, i) === 'agent' ? 'AGENT' : 'USER', id: key.slice(i + 1) };
}

/** The caller as a participant: the agent it acts as, else the user (or API key) subject. */
export function callerRef(identity: RequestIdentity): ParticipantRef {
  if (identity.agentId) return { kind: 'AGENT', id: identity.agentId };
  return { kind: 'USER', id: identity.subject ?? `${identity.kind}` };
}

export function isAdmin(identity: RequestIdentity): boolean {
  return identity.scopes.includes('admin');
}

export function participantInput(input: { kind: ParticipantKind; id: string }, field: string): ParticipantRef {
  const id = input.kind === 'AGENT' ? parseId(input.id, `${field}.id`) : input.id.trim();
  if (id.length === 0 || id.length > 200) throw badInput(`${field}.id must have 1 to 200 characters`, { field: `${field}.id` });
  return { kind: input.kind, id };
}

// --- Message parts (A2A 0.3: TextPart, DataPart, FilePart with FileWithUri) ------------------

export interface FileRef {
  uri: string;
  mediaType: string | null;
  name: string | null;
  sizeBytes: number | null;
}

export type MessagePart =
  | { kind: 'TEXT'; text: string; metadata?: Record<string, unknown> }
  | { kind: 'DATA'; data: Record<string, unknown>; metadata?: Record<string, unknown> }
  | { kind: 'FILE'; file: FileRef; metadata?: Record<string, unknown> };

export interface MessagePartInput {
  text?: string | null;
  data?: unknown;
  file?: { uri: string; mediaType?: string | null; name?: string | null; sizeBytes?: number | null } | null;
  metadata?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function normaliseParts(inputs: readonly MessagePartInput[], limits: Limits, field = 'parts'): { parts: MessagePart[]; json: string } {
  if (inputs.length < 1 || inputs.length > MAX_PARTS) throw badInput(`${field} must have 1 to ${MAX_PARTS} parts, got ${inputs.length}`, { field });
  const parts = inputs.map((p, i): MessagePart => {
    const at = `${field}[${i}]`;
    const given = [p.text != null, p.data != null, p.file != null].filter(Boolean).length;
    if (given !== 1) throw badInput(`${at} must have exactly one of text, data, file`, { field: at });
    if (p.metadata != null && !isObject(p.metadata)) throw badInput(`${at}.metadata must be a JSON object`, { field: `${at}.metadata` });
    const metadata = p.metadata != null ? { metadata: p.metadata as Record<string, unknown> } : {};
    if (p.text != null) {
      if (p.text.length === 0) throw badInput(`${at}.text must not be empty`, { field: `${at}.text` });
      return { kind: 'TEXT', text: p.text, ...metadata };
    }
    if (p.data != null) {
      if (!isObject(p.data)) throw badInput(`${at}.data must be a JSON object (A2A DataPart)`, { field: `${at}.data` });
      return { kind: 'DATA', data: p.data, ...metadata };
    }
    const f = p.file as NonNullable<MessagePartInput['file']>;
    if (f.uri.length > MAX_URI || !/^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$/.test(f.uri))
      throw badInput(`${at}.file.uri must be an absolute URI of at most ${MAX_URI} characters`, { field: `${at}.file.uri` });
    if (f.mediaType != null && !/^[\w.+-]+\/[\w.+-]+$/.test(f.mediaType))
      throw badInput(`${at}.file.mediaType must be a media type such as text/plain`, { field: `${at}.file.mediaType` });
    if (f.sizeBytes != null && (!Number.isSafeInteger(f.sizeBytes) || f.sizeBytes < 0))
      throw badInput(`${at}.file.sizeBytes must be an integer >= 0`, { field: `${at}.file.sizeBytes` });
    if (f.name != null && f.name.length > 255) throw badInput(`${at}.file.name must have at most 255 characters`, { field: `${at}.file.name` });
    return { kind: 'FILE', file: { uri: f.uri, mediaType: f.mediaType ?? null, name: f.name ?? null, sizeBytes: f.sizeBytes ?? null }, ...metadata };
  });
  const json = JSON.stringify(parts);
  const bytes = Buffer.byteLength(json);
  if (bytes > limits.messageMaxBytes) throw messageTooLarge(bytes, limits.messageMaxBytes);
  return { parts, json };
}

export function clientMessageId(value: string | null | undefined): string | null {
  if (value == null) return null;
  if (value.length < 1 || value.length > MAX_CLIENT_MESSAGE_ID)
    throw badInput(`clientMessageId must have 1 to ${MAX_CLIENT_MESSAGE_ID} characters`, { field: 'clientMessageId' });
  return value;
}

export function mentions(inputs: readonly { kind: ParticipantKind; id: string }[] | null | undefined): ParticipantKey[] {
  if (!inputs) return [];
  if (inputs.length > MAX_MENTIONS) throw badInput(`mentions must have at most ${MAX_MENTIONS} items`, { field: 'mentions' });
  return [...new Set(inputs.map((m, i) => keyOf(participantInput(m, `mentions[${i}]`))))];
}

export function title(value: string | null | undefined): string | null {
  if (value == null) return null;
  const t = value.trim();
  if (t.length > MAX_TITLE) throw badInput(`title must have at most ${MAX_TITLE} characters`, { field: 'title' });
  return t === '' ? null : t;
}

// --- Errors -----------------------------------------------------------------------------------

export function messageTooLarge(bytes: number, max: number): GraphQLError {
  return domainError('MESSAGE_TOO_LARGE', `The message's parts are ${bytes} bytes of JSON; at most ${max} are allowed`, { bytes, maxBytes: max });
}

export function rateLimited(perMinute: number, retryAfterSeconds: number): GraphQLError {
  return domainError('RATE_LIMITED', `At most ${perMinute} messages per minute per participant; retry in ${retryAfterSeconds} s`, {
    limit: perMinute,
    retryAfterSeconds,
  });
}

export function channelFull(channelId: string, max: number): GraphQLError {
  return domainError('CHANNEL_FULL', `Channel "${channelId}" has its maximum of ${max} participants`, { channelId, maxParticipants: max });
}

export function notParticipant(channelId: string, why: string): GraphQLError {
  return domainError('NOT_A_PARTICIPANT', `${why} in channel "${channelId}"`, { channelId });
}

/** A settable status: OFFLINE is what a missing connection shows, never chosen. */
export function chosenStatus(status: PresenceStatus): PresenceStatus {
  if (status === 'OFFLINE') throw badInput('status must be ONLINE, AWAY or BUSY (OFFLINE is shown when no connection is live)', { field: 'status' });
  return status;
}

export function historyPage(args: { first?: number | null; after?: string | null; last?: number | null; before?: string | null }): HistoryPage {
  if (args.first != null && args.last != null) throw badInput('give first or last, not both', { field: 'first' });
  const check = (n: number, field: string) => {
    if (!Number.isInteger(n) || n < 1 || n > MAX_HISTORY_PAGE) throw badInput(`${field} must be an integer from 1 to ${MAX_HISTORY_PAGE}, got ${n}`, { field });
    return n;
  };
  const after = args.after ? decodeSequenceCursor(args.after, 'after') : null;
  const before = args.before ? decodeSequenceCursor(args.before, 'before') : null;
  if (args.first != null || (after !== null && args.last == null))
    return { direction: 'forward', count: check(args.first ?? DEFAULT_HISTORY_PAGE, 'first'), after, before };
  return { direction: 'backward', count: check(args.last ?? DEFAULT_HISTORY_PAGE, 'last'), after, before };
}

export interface HistoryPage {
  direction: 'forward' | 'backward';
  count: number;
  /** Messages after this channel sequence. */
  after: number | null;
  /** Messages before this channel sequence. */
  before: number | null;
}

export function encodeSequenceCursor(sequence: number): string {
  return Buffer.from(`seq:${sequence}`).toString('base64url');
}

function decodeSequenceCursor(cursor: string, field: string): number {
  const m = /^seq:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw badInput(`${field} is not a cursor returned by this API`, { argument: field });
  return Number(m[1]);
}

/** The names codegen maps the GraphQL types to (the generated file has its own ParticipantRef and MessagePart). */
export type ParticipantRefModel = ParticipantRef;
export type MessagePartModel = MessagePart;
