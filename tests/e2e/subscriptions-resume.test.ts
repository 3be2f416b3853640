// Resuming subscriptions through the gateway: a subscriber that comes back with the last
// sequence it saw (afterSequence) gets what it missed, in order, then the live events, none
// twice; past the retention, or past the last event, it is told EVENTS_EXPIRED.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlOk, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, subscribe, waitFor, wsClient, type Result } from '../subscriptions/support.ts';

manageProcesses();

const TASKS = `subscription ($after: SafeInt) { taskUpdated(afterSequence: $after) { eventId sequence kind to task { title } } }`;

interface TaskEvent {
  eventId: string;
  sequence: number;
  kind: string;
  to: string;
  task: { title: string };
}

const taskEvent = (r: Result): TaskEvent => {
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return (r.data as { taskUpdated: TaskEvent }).taskUpdated;
};

describe('resuming a subscription after a sequence', () => {
  let dataDir: string;
  let platform: Platform;
  let client: Client;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-resume-'));
    platform = await startPlatform({ dataDir });
    client = wsClient(platform.url);
  });
  afterAll(async () => {
    await client?.dispose();
    await platform?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const submit = (title: string) => gqlOk(platform.url, `mutation ($t: String!) { submitTask(input: { title: $t }) { id } }`, { t: title });

  it('gets the events it missed, in order, then the live ones, with no gap and no duplicate', async () => {
    let before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const live = subscribe(client, { query: TASKS });
    await subgraphSubscribed(platform.orchestration, before);
    await submit('seen 1');
    await submit('seen 2');
    const seen = [taskEvent(await live.next()), taskEvent(await live.next())];
    expect(seen.map((e) => e.task.title)).toEqual(['seen 1', 'seen 2']);
    expect(seen[1]?.sequence).toBe((seen[0]?.sequence ?? 0) + 1);
    const last = seen[1]?.sequence ?? 0;
    live.unsubscribe();

    // Away: these happen while nobody listens.
    await submit('missed 1');
    await submit('missed 2');
    await submit('missed 3');

    before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const resumed = subscribe(client, { query: TASKS, variables: { after: last } });
    const replayed = [taskEvent(await resumed.next()), taskEvent(await resumed.next()), taskEvent(await resumed.next())];
    await subgraphSubscribed(platform.orchestration, before);
    await submit('live');
    const next = taskEvent(await resumed.next());
    expect([...replayed, next].map((e) => [e.task.title, e.sequence, e.kind, e.to])).toEqual([
      ['missed 1', last + 1, 'STATE_CHANGED', 'SUBMITTED'],
      ['missed 2', last + 2, 'STATE_CHANGED', 'SUBMITTED'],
      ['missed 3', last + 3, 'STATE_CHANGED', 'SUBMITTED'],
      ['live', last + 4, 'STATE_CHANGED', 'SUBMITTED'],
    ]);
    const ids = [...seen, ...replayed, next].map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
    // Nothing else came (a replayed event delivered live again would be here, before "after").
    await submit('after');
    expect(taskEvent(await resumed.next()).task.title).toBe('after');
    expect(resumed.buffered).toHaveLength(0);
    resumed.unsubscribe();
  });

  it('two clients resuming from the same sequence each get the whole replay (a resuming subscription shares no stream)', async () => {
    const probe = subscribe(client, { query: TASKS });
    let before = subgraphOpenSubscriptions(platform.orchestration).opened;
    await subgraphSubscribed(platform.orchestration, before);
    await submit('mark');
    const from = taskEvent(await probe.next()).sequence;
    probe.unsubscribe();
    await submit('gone 1');
    await submit('gone 2');

    before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const first = subscribe(client, { query: TASKS, variables: { after: from } });
    const firstReplay = [taskEvent(await first.next()), taskEvent(await first.next())];
    await subgraphSubscribed(platform.orchestration, before);
    // The same operation and variables, while the first is live: it must not join the first's stream.
    const other = wsClient(platform.url);
    try {
      const second = subscribe(other, { query: TASKS, variables: { after: from } });
      const secondReplay = [taskEvent(await second.next()), taskEvent(await second.next())];
      for (const replay of [firstReplay, secondReplay]) expect(replay.map((e) => e.task.title)).toEqual(['gone 1', 'gone 2']);
      await submit('both');
      expect(taskEvent(await first.next()).task.title).toBe('both');
      expect(taskEvent(await second.next()).task.title).toBe('both');
      first.unsubscribe();
      second.unsubscribe();
    } finally {
      await other.dispose();
    }
  });

  it('refuses a sequence past the last event with EVENTS_EXPIRED, through the gateway', async () => {
    const sub = subscribe(client, { query: TASKS, variables: { after: 1_000_000_000 } });
    const result = await sub.next();
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'EVENTS_EXPIRED', reason: 'future' });
    expect(result.errors?.[0]?.message).toMatch(/subscribe again without afterSequence/);
    expect(await sub.ended).toEqual({ kind: 'complete' });
  });

  it('refuses a negative afterSequence with BAD_USER_INPUT', async () => {
    const sub = subscribe(client, { query: TASKS, variables: { after: -1 } });
    const result = await sub.next();
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'afterSequence' });
  });
});

describe('resuming past the retention', () => {
  let dataDir: string;
  let platform: Platform;
  let client: Client;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-resume-expired-'));
    // Published events are pruned at once.
    platform = await startPlatform({ dataDir, env: { EVENT_RETENTION_SECONDS: '0', OUTBOX_RELAY_INTERVAL_MS: '50' } });
    client = wsClient(platform.url);
  });
  afterAll(async () => {
    await client?.dispose();
    await platform?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers EVENTS_EXPIRED, telling to refetch and subscribe without afterSequence', async () => {
    await gqlOk(platform.url, `mutation { registerAgent(input: { name: "Pruned", skills: [{ id: "p", name: "P", tags: ["p"] }] }) { id } }`);
    const errors = await waitFor('the registration event to be pruned', async () => {
      const sub = subscribe(client, { query: `subscription { agentStatusChanged(afterSequence: 0) { sequence } }` });
      const result = await sub.next();
      sub.unsubscribe();
      return result.errors ?? false;
    });
    expect(errors[0]?.extensions).toMatchObject({ code: 'EVENTS_EXPIRED', reason: 'expired', afterSequence: 0, serviceName: 'agents' });
    expect(errors[0]?.message).toMatch(/Query the current state, then subscribe again without afterSequence/);
  });
});
