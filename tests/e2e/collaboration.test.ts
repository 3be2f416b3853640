// The collaboration subgraph through the gateway, as clients see it: a person and an agent
// converse in a task's channel over graphql-ws, a client that reconnects resumes without gaps or
// duplicates, presence follows a client process killed with SIGKILL, and the REST routes answer
// with their problem+json codes. Every service is its own process on a free port.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { userToken } from '../support/auth.ts';
import { gql, gqlOk, manageProcesses, REPO_ROOT, startPlatform, type Platform } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient, type Result } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let base: string;
const clients: Client[] = [];
const children: ChildProcess[] = [];

/** Everything but admin: what a person working in the tenant has. */
const USER_SCOPES = PLATFORM_SCOPES.filter((s) => s !== 'admin');

/** A caller of its own: a person (subject, no admin) or an agent (agentId, with an agent's scopes). */
async function caller(who: { subject: string } | { agentId: string }) {
  const token =
    'agentId' in who
      ? await userToken({ subject: `agent:${who.agentId}`, agentId: who.agentId, scopes: AGENT_SCOPES })
      : await userToken({ subject: who.subject, scopes: USER_SCOPES });
  const headers = { authorization: `Bearer ${token}` };
  const client = wsClient(platform.url, { connectionParams: { authorization: `Bearer ${token}` } });
  clients.push(client);
  return {
    token,
    client,
    gql: <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) => gqlOk<T>(platform.url, query, variables, headers),
    raw: (query: string, variables?: Record<string, unknown>) => gql(platform.url, query, variables, headers),
    rest: async (method: string, path: string, body?: unknown, extra: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...headers, ...extra, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, type: res.headers.get('content-type'), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
  };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-collaboration-'));
  platform = await startPlatform({ dataDir, with: ['collaboration'] });
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(clients.map((c) => c.dispose()));
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const collaboration = () => platform.subgraphs.collaboration!;

async function subscribed(start: () => void, count = 1) {
  const before = subgraphOpenSubscriptions(collaboration()).opened;
  start();
  await subgraphSubscribed(collaboration(), before, count);
}

const SEND = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { id sequence threadId sender { kind id } parts { kind text data file { uri mediaType sizeBytes } } } }`;
const MESSAGE_ADDED = `subscription($c: ID!, $after: SafeInt) { messageAdded(channelId: $c, afterSequence: $after) { sequence channelId message { sequence sender { kind id } parts { kind text } replyToId } } }`;

type Added = {
  messageAdded: { sequence: number; message: { sequence: number; sender: { kind: string; id: string }; parts: { text: string }[]; replyToId: string | null } };
};
const added = (r: Result) => (r.data as unknown as Added).messageAdded;

describe('collaboration through the gateway', () => {
  it('two clients converse through a task channel: messages, mentions, threads, typing, edits, unread counts', async () => {
    const alice = await caller({ subject: 'alice' });
    const agentId = randomUUID();
    const agent = await caller({ agentId });
    const { submitTask } = await alice.gql<{ submitTask: { id: string } }>('mutation { submitTask(input: { title: "Talk it through" }) { id } }');
    const { openTaskChannel } = await alice.gql<{ openTaskChannel: { id: string; kind: string; taskId: string; myRole: string } }>(
      'mutation($t: ID!) { openTaskChannel(taskId: $t) { id kind taskId myRole } }',
      { t: submitTask.id },
    );
    expect(openTaskChannel).toMatchObject({ kind: 'TASK', taskId: submitTask.id, myRole: 'OWNER' });
    const channelId = openTaskChannel.id;

    let aliceSub!: ReturnType<typeof subscribe>;
    let agentSub!: ReturnType<typeof subscribe>;
    let agentMine!: ReturnType<typeof subscribe>;
    let events!: ReturnType<typeof subscribe>;
    await subscribed(() => {
      aliceSub = subscribe(alice.client, { query: MESSAGE_ADDED, variables: { c: channelId } });
      agentSub = subscribe(agent.client, { query: MESSAGE_ADDED, variables: { c: channelId } });
      agentMine = subscribe(agent.client, { query: 'subscription { myMessages { channelId message { sequence parts { text } mentions { kind id } } } }' });
      events = subscribe(alice.client, {
        query: 'subscription($c: ID!) { channelEvents(channelId: $c) { kind participant { kind id } role message { version parts { text } } } }',
        variables: { c: channelId },
      });
    }, 4);

    const question = await alice.gql<{ sendMessage: { id: string; sequence: number; threadId: string } }>(SEND, {
      input: {
        channelId,
        clientMessageId: 'q-1',
        parts: [
          { text: 'Can you take this?' },
          { data: { priority: 'high' } },
          { file: { uri: 'https://files.example/spec.pdf', mediaType: 'application/pdf', sizeBytes: 1024 } },
        ],
        mentions: [{ kind: 'AGENT', id: agentId }],
      },
    });
    expect(question.sendMessage.sequence).toBe(1);
    expect(question.sendMessage.threadId).toBe(question.sendMessage.id);
    for (const sub of [aliceSub, agentSub]) {
      expect(added(await sub.next())).toMatchObject({
        message: { sequence: 1, sender: { kind: 'USER', id: 'alice' }, parts: [{ text: 'Can you take this?' }, {}, {}] },
      });
    }
    // The agent is not a participant yet: the mention addresses it.
    expect((await agentMine.next()).data).toEqual({
      myMessages: {
        channelId,
        message: { sequence: 1, parts: [{ text: 'Can you take this?' }, { text: null }, { text: null }], mentions: [{ kind: 'AGENT', id: agentId }] },
      },
    });

    // The agent types, then replies in the thread: sending joins it to the task's channel.
    await agent.gql('mutation($c: ID!) { setTyping(channelId: $c) }', { c: channelId }).catch(() => undefined);
    const reply = await agent.gql<{ sendMessage: { sequence: number; threadId: string; sender: { kind: string } } }>(SEND, {
      input: { channelId, parts: [{ text: 'On it.' }], replyToId: question.sendMessage.id },
    });
    expect(reply.sendMessage).toMatchObject({ sequence: 2, threadId: question.sendMessage.id, sender: { kind: 'AGENT' } });
    expect(added(await aliceSub.next())).toMatchObject({
      message: { sequence: 2, sender: { kind: 'AGENT', id: agentId }, replyToId: question.sendMessage.id },
    });
    expect(added(await agentSub.next()).message.sequence).toBe(2);
    expect((await events.next()).data).toEqual({
      channelEvents: { kind: 'JOINED', participant: { kind: 'AGENT', id: agentId }, role: 'MEMBER', message: null },
    });
    await agent.gql('mutation($c: ID!) { setTyping(channelId: $c) }', { c: channelId });
    expect((await events.next()).data).toMatchObject({ channelEvents: { kind: 'TYPING', participant: { kind: 'AGENT', id: agentId } } });

    // Alice edits her question; the history keeps the first version.
    await alice.gql('mutation($id: ID!) { editMessage(id: $id, parts: [{ text: "Can you take this today?" }], expectedVersion: 1) { version } }', {
      id: question.sendMessage.id,
    });
    expect((await events.next()).data).toMatchObject({
      channelEvents: { kind: 'EDITED', participant: { kind: 'USER', id: 'alice' }, message: { version: 2, parts: [{ text: 'Can you take this today?' }] } },
    });
    const notTheSender = await agent.raw('mutation($id: ID!) { editMessage(id: $id, parts: [{ text: "x" }]) { version } }', { id: question.sendMessage.id });
    expect(notTheSender.errors?.[0]?.extensions?.code).toBe('NOT_A_PARTICIPANT');

    // Sending the same clientMessageId again answers the first message, and nobody hears it twice.
    const again = await alice.gql<{ sendMessage: { id: string; sequence: number } }>(SEND, {
      input: {
        channelId,
        clientMessageId: 'q-1',
        parts: [
          { text: 'Can you take this?' },
          { data: { priority: 'high' } },
          { file: { uri: 'https://files.example/spec.pdf', mediaType: 'application/pdf', sizeBytes: 1024 } },
        ],
        mentions: [{ kind: 'AGENT', id: agentId }],
      },
    });
    expect(again.sendMessage).toMatchObject({ id: question.sendMessage.id, sequence: 1 });

    // The task, joined across subgraphs, shows the conversation and alice's unread reply.
    const { task } = await alice.gql<{
      task: {
        title: string;
        channel: {
          lastSequence: number;
          unreadCount: number;
          participants: { kind: string; role: string }[];
          messages: { nodes: { sequence: number; history: { version: number }[] }[] };
        };
      };
    }>(
      'query($t: ID!) { task(id: $t) { title channel { lastSequence unreadCount participants { kind role } messages(last: 10) { nodes { sequence history { version } } } } } }',
      { t: submitTask.id },
    );
    expect(task).toEqual({
      title: 'Talk it through',
      channel: {
        lastSequence: 2,
        unreadCount: 1,
        participants: [
          { kind: 'USER', role: 'OWNER' },
          { kind: 'AGENT', role: 'MEMBER' },
        ],
        messages: {
          nodes: [
            { sequence: 1, history: [{ version: 2 }, { version: 1 }] },
            { sequence: 2, history: [{ version: 1 }] },
          ],
        },
      },
    });
    const read = await alice.gql<{ markRead: { unreadCount: number; myLastReadSequence: number } }>(
      'mutation($c: ID!) { markRead(channelId: $c, sequence: 2) { unreadCount myLastReadSequence } }',
      {
        c: channelId,
      },
    );
    expect(read.markRead).toEqual({ unreadCount: 0, myLastReadSequence: 2 });
    expect(agentSub.buffered).toHaveLength(0);
    for (const s of [aliceSub, agentSub, agentMine, events]) s.unsubscribe();
  });

  it('a reconnecting client resumes after its last sequence without gaps or duplicates', async () => {
    const bob = await caller({ subject: 'bob' });
    const { createChannel } = await bob.gql<{ createChannel: { id: string } }>(
      'mutation { createChannel(input: { kind: GROUP, title: "resume", participants: [{ kind: USER, id: "carol" }] }) { id } }',
    );
    const channelId = createChannel.id;
    const send = (text: string) => bob.gql(SEND, { input: { channelId, parts: [{ text }] } });
    let first!: ReturnType<typeof subscribe>;
    await subscribed(() => {
      first = subscribe(bob.client, { query: MESSAGE_ADDED, variables: { c: channelId } });
    });
    await send('m1');
    await send('m2');
    const seen = [added(await first.next()), added(await first.next())];
    expect(seen.map((e) => e.message.sequence)).toEqual([1, 2]);
    first.unsubscribe();
    // While away: three messages.
    for (const t of ['m3', 'm4', 'm5']) await send(t);
    const resumed = subscribe(bob.client, { query: MESSAGE_ADDED, variables: { c: channelId, after: seen[1]!.sequence } });
    const replayed = [added(await resumed.next()), added(await resumed.next()), added(await resumed.next())];
    expect(replayed.map((e) => e.message.parts[0]!.text)).toEqual(['m3', 'm4', 'm5']);
    expect(replayed.map((e) => e.message.sequence)).toEqual([3, 4, 5]);
    await send('m6');
    expect(added(await resumed.next()).message.sequence).toBe(6);
    expect(resumed.buffered).toHaveLength(0);
    resumed.unsubscribe();
    // History pages back from the newest too.
    const { channel } = await bob.gql<{
      channel: { messages: { nodes: { sequence: number }[]; pageInfo: { hasPreviousPage: boolean; startCursor: string } } };
    }>('query($c: ID!) { channel(id: $c) { messages(last: 2) { nodes { sequence } pageInfo { hasPreviousPage startCursor } } } }', { c: channelId });
    expect(channel.messages.nodes.map((n) => n.sequence)).toEqual([5, 6]);
    expect(channel.messages.pageInfo.hasPreviousPage).toBe(true);
  });

  it('presence follows a client process killed with SIGKILL', async () => {
    const watcher = await caller({ subject: 'watcher' });
    const agentId = randomUUID();
    const agent = await caller({ agentId });
    let changes!: ReturnType<typeof subscribe>;
    await subscribed(() => {
      changes = subscribe(watcher.client, {
        query: 'subscription { presenceChanged { previousStatus presence { status connections participant { kind id } } } }',
      });
    });
    const { setPresence } = await agent.gql<{ setPresence: { status: string } }>('mutation { setPresence(status: BUSY) { status } }');
    expect(setPresence.status).toBe('OFFLINE');

    // A separate process holds the agent's only live subscription, then dies without a goodbye.
    const before = subgraphOpenSubscriptions(collaboration()).opened;
    const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT_SCRIPT], {
      cwd: REPO_ROOT,
      env: { ...process.env, WS_URL: platform.url.replace(/^http/, 'ws'), TOKEN: agent.token },
      stdio: 'ignore',
    });
    children.push(child);
    await subgraphSubscribed(collaboration(), before);
    const agentChange = async () => {
      for (;;) {
        const e = (await changes.next()).data as { presenceChanged: { previousStatus: string; presence: { status: string; participant: { id: string } } } };
        if (e.presenceChanged.presence.participant.id === agentId) return e.presenceChanged;
      }
    };
    expect(await agentChange()).toMatchObject({ previousStatus: 'OFFLINE', presence: { status: 'BUSY' } });
    const { presence } = await watcher.gql<{ presence: { status: string; connections: number }[] }>(
      'query($p: [ParticipantRefInput!]!) { presence(participants: $p) { status connections } }',
      { p: [{ kind: 'AGENT', id: agentId }] },
    );
    expect(presence).toEqual([{ status: 'BUSY', connections: 1 }]);

    child.kill('SIGKILL');
    expect(await agentChange()).toMatchObject({ previousStatus: 'BUSY', presence: { status: 'OFFLINE' } });
    const online = await watcher.gql<{ onlineParticipants: { participant: { id: string } }[] }>('{ onlineParticipants { participant { id } } }');
    expect(online.onlineParticipants.map((p) => p.participant.id)).not.toContain(agentId);

    // A heartbeat keeps an agent without subscriptions present.
    expect((await agent.gql<{ heartbeat: { status: string } }>('mutation { heartbeat { status } }')).heartbeat.status).toBe('BUSY');
    const { agentPresence } = await waitFor('the heartbeat to show', async () => {
      const r = await watcher.gql<{ presence: { status: string }[] }>('query($p: [ParticipantRefInput!]!) { presence(participants: $p) { status } }', {
        p: [{ kind: 'AGENT', id: agentId }],
      });
      return r.presence[0]?.status === 'BUSY' ? { agentPresence: r.presence[0] } : undefined;
    });
    expect(agentPresence.status).toBe('BUSY');
    changes.unsubscribe();
  });

  it('serves the REST routes, with problem+json codes for the limits and roles', async () => {
    const dana = await caller({ subject: 'dana' });
    const key = randomUUID();
    const created = await dana.rest(
      'POST',
      '/v1/channels',
      { kind: 'GROUP', title: 'REST', participants: [{ kind: 'USER', id: 'erin', role: 'OBSERVER' }] },
      { 'idempotency-key': key },
    );
    expect(created.status).toBe(201);
    const channelId = created.body.id as string;
    const repeat = await dana.rest(
      'POST',
      '/v1/channels',
      { kind: 'GROUP', title: 'REST', participants: [{ kind: 'USER', id: 'erin', role: 'OBSERVER' }] },
      { 'idempotency-key': key },
    );
    expect(repeat.body.id).toBe(channelId);

    const posted = await dana.rest('POST', `/v1/channels/${channelId}/messages`, { parts: [{ text: 'hello over REST' }], clientMessageId: 'r-1' });
    expect(posted.status).toBe(201);
    expect(posted.body).toMatchObject({ sequence: 1, parts: [{ kind: 'TEXT', text: 'hello over REST' }] });
    const history = await dana.rest('GET', `/v1/channels/${channelId}/messages?last=10`);
    expect(history.status).toBe(200);
    expect((history.body.messages as { nodes: { sequence: number }[] }).nodes.map((m) => m.sequence)).toEqual([1]);

    const tooLarge = await dana.rest('POST', `/v1/channels/${channelId}/messages`, { parts: [{ text: 'x'.repeat(70_000) }] });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.type).toContain('application/problem+json');
    expect(tooLarge.body).toMatchObject({ type: '/problems/message-too-large', code: 'MESSAGE_TOO_LARGE' });

    const erin = await caller({ subject: 'erin' });
    const observer = await erin.rest('POST', `/v1/channels/${channelId}/messages`, { parts: [{ text: 'may I?' }] });
    expect(observer.status).toBe(403);
    expect(observer.body).toMatchObject({ type: '/problems/not-a-participant', code: 'NOT_A_PARTICIPANT' });
    // A task channel opens only for a task orchestration knows.
    const unknownTask = await dana.rest('POST', `/v1/tasks/${randomUUID()}/channel`);
    expect(unknownTask.status).toBe(404);
    expect(unknownTask.body).toMatchObject({ code: 'NOT_FOUND' });
    const stranger = await caller({ subject: 'frank' });
    expect((await stranger.rest('GET', `/v1/channels/${channelId}`)).status).toBe(404);
    const bad = await dana.rest('POST', `/v1/channels/${channelId}/messages`, { parts: [{ text: 'a', data: { b: 1 } }] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});

/** A bare graphql-transport-ws client: connects with TOKEN, subscribes to myMessages, then waits forever. */
const CLIENT_SCRIPT = `
import WebSocket from 'ws';
const ws = new WebSocket(process.env.WS_URL, 'graphql-transport-ws');
ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer ' + process.env.TOKEN } })));
ws.on('message', (data) => {
  const m = JSON.parse(String(data));
  if (m.type === 'connection_ack') ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { myMessages { channelId } }' } }));
  if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong' }));
});
setInterval(() => {}, 1 << 30);
`;
