import { randomUUID } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../runtime/db.ts';
import type { DomainEvent, EventBus } from '../../runtime/events.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { createLoaders } from '../../subgraphs/orchestration/context.ts';
import {
  TASK_PROGRESS_REPORTED,
  TASK_STATE_CHANGED,
  WORKFLOW_RUN_STATUS_CHANGED,
  validateTaskSpec,
  validateWorkflowDefinition,
  type Actor,
  type AgentActor,
  type TaskSpecFields,
  type TaskState,
  type WorkflowStepFields,
} from '../../subgraphs/orchestration/domain.ts';
import { migrations } from '../../subgraphs/orchestration/migrations.ts';
import { OrchestrationStore, type OrchestrationDB, type TaskRow, type WorkflowRunRow } from '../../subgraphs/orchestration/store.ts';
import { backends, DATABASE_URL, openTestDatabase, silentLogger, type Backend, type TestDatabase } from '../support/databases.ts';
import { rejection } from '../support/store-helpers.ts';

const DAY = 86_400_000;
/** The caller of the commands no agent makes (submit, cancel, provide input, runs). */
const USER: Actor = { subject: 'user:tester', agentId: null };
/** A caller acting as this agent. */
const as = (agentId: string): AgentActor => ({ subject: `agent:${agentId}`, agentId });
let clocks = 0;

/**
 * A clock that moves only when told to. The sweeper covers every tenant of the database, so each
 * test lives a month earlier than the one before: its sweeps never reach another test's leases.
 */
function manualClock() {
  let t = Date.parse('2030-01-01T00:00:00.000Z') - clocks++ * 30 * DAY;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    at: (offsetMs = 0) => new Date(t + offsetMs).toISOString(),
  };
}

/** Reads a task's state over a connection of its own: it sees only what was committed. */
interface CommittedReader {
  stateOf(id: string): Promise<TaskState | undefined>;
  close(): Promise<void>;
}

async function committedReader(backend: Backend, database: Database<OrchestrationDB>): Promise<CommittedReader> {
  if (backend === 'sqlite') {
    const conn = new BetterSqlite3(database.location, { readonly: true });
    const stmt = conn.prepare<[string], { state: TaskState }>('select state from tasks where id = ?');
    return {
      stateOf: async (id) => stmt.get(id)?.state,
      close: async () => void conn.close(),
    };
  }
  const client = new pg.Client({ connectionString: DATABASE_URL, options: `-c search_path="${schemaOf(database)}"` });
  await client.connect();
  return {
    async stateOf(id) {
      const r = await client.query<{ state: TaskState }>('select state from tasks where id = $1', [id]);
      return r.rows[0]?.state;
    },
    close: () => client.end(),
  };
}

const schemaOf = (database: { location: string }): string => database.location.split(' schema ')[1] ?? '';

/** The real bus, observed: for each published task event, the state a separate connection sees at that moment. */
function observedBus(inner: EventBus, reader: () => CommittedReader | undefined) {
  const seen: { event: DomainEvent; committedState: TaskState | undefined }[] = [];
  const bus: EventBus = {
    kind: inner.kind,
    async publish(event) {
      // Recorded in the order of the calls, the order the real buses deliver in; the state is
      // read from the moment of the call.
      const entry: (typeof seen)[number] = { event, committedState: undefined };
      seen.push(entry);
      const r = reader();
      const delivered = inner.publish(event);
      if (event.type === TASK_STATE_CHANGED && r) entry.committedState = await r.stateOf(event.subjectId);
      await delivered;
    },
    subscribe: (type, handler) => inner.subscribe(type, handler),
    onReconnect: (listener) => inner.onReconnect(listener),
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
  return { bus, seen };
}

const spec = (fields: Partial<TaskSpecFields> = {}) => validateTaskSpec({ title: 'Task', ...fields });
const step = (id: string, dependsOn: string[] = [], extra: Partial<WorkflowStepFields> = {}): WorkflowStepFields => ({
  id,
  title: `Step ${id}`,
  dependsOn,
  requiredSkillTags: [`wf-${id}`],
  ...extra,
});

describe.each(backends)('orchestration store on $backend', ({ backend, skip }) => {
  describe.skipIf(skip !== false)(skip === false ? 'with a private database' : `skipped: ${skip}`, () => {
    let t: TestDatabase<OrchestrationDB>;
    let reader: CommittedReader | undefined;
    let observed: ReturnType<typeof observedBus>;

    beforeAll(async () => {
      t = await openTestDatabase<OrchestrationDB>(backend, 'orchestration', migrations);
      reader = await committedReader(backend, t.database);
      observed = observedBus(t.bus, () => reader);
    });
    afterAll(async () => {
      await reader?.close();
      await t?.drop();
    });

    // Every test works in its own tenant and its own stretch of time.
    function setup(opts: { sweepBatchSize?: number } = {}) {
      const clock = manualClock();
      const store = new OrchestrationStore({ database: t.database, bus: observed.bus, logger: t.logger, clock: clock.now, ...opts });
      const tenant = `tenant-${randomUUID()}`;
      const events = () => observed.seen.filter((s) => s.event.tenantId === tenant).map((s) => s.event);
      return { clock, store, tenant, events };
    }

    async function submitMany(
      store: OrchestrationStore,
      tenant: string,
      clock: ReturnType<typeof manualClock>,
      n: number,
      fields: Partial<TaskSpecFields> = {},
    ) {
      const out: TaskRow[] = [];
      for (let i = 0; i < n; i++) {
        out.push(await store.submitTask(tenant, USER, spec({ title: `Task ${i}`, ...fields })));
        clock.advance(1);
      }
      return out;
    }

    describe('tasks', () => {
      it('submits a task and reads it back', async () => {
        const { store, tenant, clock } = setup();
        const created = await store.submitTask(
          tenant,
          USER,
          spec({ title: 'Summarise', description: 'the report', input: { doc: 'r1' }, requiredSkillTags: ['pdf'], priority: 7, timeoutSeconds: 60 }),
        );
        expect(created).toMatchObject({ state: 'SUBMITTED', attempts: 0, priority: 7, availableAt: clock.at(), version: 1 });
        const read = await store.getTask(tenant, created.id);
        expect(read).toEqual(created);
        expect(read?.input).toEqual({ doc: 'r1' });
        expect(read?.retryPolicy).toEqual({ initialIntervalSeconds: 1, backoffCoefficient: 2, maximumIntervalSeconds: 100, maximumAttempts: 3 });
      });

      it('lists newest first, filters, and paginates with cursors', async () => {
        const { store, tenant, clock } = setup();
        const plain = await submitMany(store, tenant, clock, 3);
        // Higher priority: the claim below must take a tagged task, not an older untagged one.
        const pdf = await submitMany(store, tenant, clock, 2, { requiredSkillTags: ['pdf', 'ocr'], priority: 1 });
        const agent = randomUUID();
        const claimed = await store.claimTask(tenant, as(agent), ['pdf', 'ocr'], 60);
        expect(claimed?.id).toBe(pdf[0]?.id);

        const all = [...plain, ...pdf].map((x) => x.id).reverse();
        const page1 = await store.listTasks(tenant, {}, pageRequest({ first: 2 }));
        expect(page1.nodes.map((n) => n.id)).toEqual(all.slice(0, 2));
        expect(page1.totalCount).toBe(5);
        expect(page1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
        const page2 = await store.listTasks(tenant, {}, pageRequest({ first: 2, after: page1.pageInfo.endCursor }));
        expect(page2.nodes.map((n) => n.id)).toEqual(all.slice(2, 4));
        const page3 = await store.listTasks(tenant, {}, pageRequest({ first: 2, after: page2.pageInfo.endCursor }));
        expect(page3.nodes.map((n) => n.id)).toEqual(all.slice(4));
        expect(page3.pageInfo.hasNextPage).toBe(false);

        const byTag = await store.listTasks(tenant, { skillTag: 'ocr' }, pageRequest({}));
        expect(byTag.nodes.map((n) => n.id)).toEqual(pdf.map((x) => x.id).reverse());
        expect(byTag.totalCount).toBe(2);
        const byState = await store.listTasks(tenant, { state: 'ASSIGNED' }, pageRequest({}));
        expect(byState.nodes.map((n) => n.id)).toEqual([pdf[0]?.id]);
        const byAgent = await store.listTasks(tenant, { agentId: agent }, pageRequest({}));
        expect(byAgent.nodes.map((n) => n.id)).toEqual([pdf[0]?.id]);
        const combined = await store.listTasks(tenant, { skillTag: 'pdf', state: 'SUBMITTED' }, pageRequest({}));
        expect(combined.nodes.map((n) => n.id)).toEqual([pdf[1]?.id]);
      });

      it('claims the highest priority first, then the oldest', async () => {
        const { store, tenant, clock } = setup();
        const [low] = await submitMany(store, tenant, clock, 1, { priority: 0 });
        const [highOld] = await submitMany(store, tenant, clock, 1, { priority: 5 });
        const [highNew] = await submitMany(store, tenant, clock, 1, { priority: 5 });
        const [negative] = await submitMany(store, tenant, clock, 1, { priority: -3 });
        const order: (string | undefined)[] = [];
        for (let i = 0; i < 5; i++) order.push((await store.claimTask(tenant, as(randomUUID()), [], 60))?.id);
        expect(order).toEqual([highOld?.id, highNew?.id, low?.id, negative?.id, undefined]);
      });

      it('claims only tasks whose required tags the claimer offers all of', async () => {
        const { store, tenant, clock } = setup();
        const [both] = await submitMany(store, tenant, clock, 1, { requiredSkillTags: ['pdf', 'ocr'], priority: 10 });
        const [none] = await submitMany(store, tenant, clock, 1);
        // An agent offering only "pdf" skips the task needing both and gets the untagged one.
        expect((await store.claimTask(tenant, as(randomUUID()), ['pdf'], 60))?.id).toBe(none?.id);
        expect(await store.claimTask(tenant, as(randomUUID()), ['pdf'], 60)).toBeNull();
        expect(await store.claimTask(tenant, as(randomUUID()), [], 60)).toBeNull();
        const agent = randomUUID();
        const got = await store.claimTask(tenant, as(agent), ['translate', 'ocr', 'pdf'], 45);
        expect(got).toMatchObject({ id: both?.id, state: 'ASSIGNED', agentId: agent, attempts: 1, leaseExpiresAt: clock.at(45_000), startedAt: clock.at() });
      });

      it('hands each task to exactly one of many concurrent claimers', async () => {
        const { store, tenant, clock } = setup();
        const submitted = await submitMany(store, tenant, clock, 5);
        // On PostgreSQL the claimers go through two separate pools on the same schema, like two replicas.
        let replica: Database<OrchestrationDB> | undefined;
        const stores = [store];
        if (backend === 'postgres') {
          const schema = schemaOf(t.database);
          replica = await openDatabase<OrchestrationDB>({
            name: 'orchestration',
            dataDir: '',
            databaseUrl: DATABASE_URL,
            schemaPrefix: schema.slice(0, -'orchestration'.length),
            migrations,
            logger: silentLogger,
          });
          stores.push(new OrchestrationStore({ database: replica, bus: t.bus, logger: t.logger, clock: clock.now }));
        }
        try {
          const agents = Array.from({ length: 20 }, () => randomUUID());
          const results = await Promise.all(agents.map((agent, i) => stores[i % stores.length]!.claimTask(tenant, as(agent), [], 60)));
          const won = results.filter((r): r is TaskRow => r !== null);
          expect(won).toHaveLength(5);
          expect(results.filter((r) => r === null)).toHaveLength(15);
          expect(new Set(won.map((w) => w.id))).toEqual(new Set(submitted.map((s) => s.id)));
          for (const w of won) {
            const stored = await store.getTask(tenant, w.id);
            expect(stored).toMatchObject({ state: 'ASSIGNED', attempts: 1, agentId: w.agentId, version: 2 });
          }
        } finally {
          await replica?.close();
        }
      });

      it('renews the lease on progress: ASSIGNED becomes WORKING', async () => {
        const { store, tenant, clock, events } = setup();
        const [task] = await submitMany(store, tenant, clock, 1);
        const agent = randomUUID();
        await store.claimTask(tenant, as(agent), [], 30);
        clock.advance(20_000);
        const w = await store.reportProgress(tenant, task!.id, as(agent), { percent: 40, message: 'half way', leaseSeconds: 30 });
        expect(w).toMatchObject({ state: 'WORKING', progress: { percent: 40, message: 'half way', updatedAt: clock.at() }, leaseExpiresAt: clock.at(30_000) });
        // Past the first lease but within the renewed one: nothing expires.
        expect(await store.sweep(clock.now() + 15_000)).toEqual({ requeued: 0, failed: 0 });
        expect((await store.getTask(tenant, task!.id))?.state).toBe('WORKING');
        expect(
          events()
            .filter((e) => e.type === TASK_PROGRESS_REPORTED)
            .map((e) => e.payload),
        ).toEqual([{ taskId: task!.id, agentId: agent, percent: 40, message: 'half way' }]);
        expect(await store.sweep(clock.now() + 30_000)).toEqual({ requeued: 1, failed: 0 });
      });

      it('requeues an expired lease after the backoff delay, then fails at maximumAttempts', async () => {
        const { store, tenant, clock, events } = setup();
        const [task] = await submitMany(store, tenant, clock, 1, { retryPolicy: { initialIntervalSeconds: 2, backoffCoefficient: 3, maximumAttempts: 3 } });
        const agent = randomUUID();
        const delays = [2_000, 6_000];
        for (let attempt = 1; attempt <= 3; attempt++) {
          const claimed = await store.claimTask(tenant, as(agent), [], 10);
          expect(claimed).toMatchObject({ id: task!.id, attempts: attempt });
          clock.advance(10_000);
          const swept = await store.sweep();
          const after = await store.getTask(tenant, task!.id);
          expect(after?.error).toMatchObject({ type: 'LEASE_EXPIRED' });
          if (attempt < 3) {
            expect(swept).toEqual({ requeued: 1, failed: 0 });
            const delay = delays[attempt - 1]!;
            expect(after).toMatchObject({ state: 'SUBMITTED', leaseExpiresAt: null, availableAt: clock.at(delay) });
            // Not claimable until the backoff delay has passed.
            clock.advance(delay - 1);
            expect(await store.claimTask(tenant, as(agent), [], 10)).toBeNull();
            clock.advance(1);
          } else {
            expect(swept).toEqual({ requeued: 0, failed: 1 });
            expect(after).toMatchObject({ state: 'FAILED', attempts: 3, finishedAt: clock.at() });
          }
        }
        const states = events()
          .filter((e) => e.type === TASK_STATE_CHANGED)
          .map((e) => `${String(e.payload.from)}→${String(e.payload.to)}`);
        expect(states).toEqual([
          'null→SUBMITTED',
          'SUBMITTED→ASSIGNED',
          'ASSIGNED→SUBMITTED',
          'SUBMITTED→ASSIGNED',
          'ASSIGNED→SUBMITTED',
          'SUBMITTED→ASSIGNED',
          'ASSIGNED→FAILED',
        ]);
      });

      it('times an attempt out from its claim even though progress kept renewing the lease', async () => {
        const { store, tenant, clock } = setup();
        const [task] = await submitMany(store, tenant, clock, 1, { timeoutSeconds: 30 });
        const agent = randomUUID();
        await store.claimTask(tenant, as(agent), [], 20);
        for (let i = 0; i < 2; i++) {
          clock.advance(14_000);
          await store.reportProgress(tenant, task!.id, as(agent), { percent: 10 * (i + 1), message: null, leaseSeconds: 20 });
        }
        expect(await store.sweep(clock.now() + 1_000)).toEqual({ requeued: 0, failed: 0 });
        expect(await store.sweep(clock.now() + 2_000)).toEqual({ requeued: 1, failed: 0 });
        expect(await store.getTask(tenant, task!.id)).toMatchObject({ state: 'SUBMITTED', error: { type: 'TIMEOUT' } });
      });

      it('sweeps in batches until every expired attempt is handled', async () => {
        const { store, tenant, clock } = setup({ sweepBatchSize: 2 });
        const submitted = await submitMany(store, tenant, clock, 5, { retryPolicy: { maximumAttempts: 1 } });
        for (let i = 0; i < 5; i++) await store.claimTask(tenant, as(randomUUID()), [], 10);
        expect(await store.sweep(clock.now() + 10_000)).toEqual({ requeued: 0, failed: 5 });
        for (const s of submitted) expect((await store.getTask(tenant, s.id))?.state).toBe('FAILED');
      });

      it('asks for input and takes it back to WORKING', async () => {
        const { store, tenant, clock } = setup();
        const [task] = await submitMany(store, tenant, clock, 1, { input: { doc: 'd' } });
        const agent = randomUUID();
        await store.claimTask(tenant, as(agent), [], 60);
        await store.reportProgress(tenant, task!.id, as(agent), { percent: 5, message: null, leaseSeconds: 60 });
        const asked = await store.requestInput(tenant, task!.id, as(agent), { message: 'Which language?' });
        expect(asked).toMatchObject({ state: 'INPUT_REQUIRED', leaseExpiresAt: null, progress: { message: 'Which language?' } });
        // Waiting for input is never swept, however long it takes.
        expect(await store.sweep(clock.now() + DAY)).toEqual({ requeued: 0, failed: 0 });
        clock.advance(1000);
        const resumed = await store.provideInput(tenant, task!.id, USER, { input: { language: 'fr' }, leaseSeconds: 60 });
        expect(resumed).toMatchObject({ state: 'WORKING', input: { doc: 'd', language: 'fr' }, leaseExpiresAt: clock.at(60_000) });
      });

      it('cancels from every non-terminal state and refuses once the task ended', async () => {
        const { store, tenant, clock } = setup();
        const agent = randomUUID();
        const make = async (to: TaskState): Promise<TaskRow> => {
          const [task] = await submitMany(store, tenant, clock, 1, { requiredSkillTags: [`only-${to}`] });
          if (to === 'SUBMITTED') return task!;
          await store.claimTask(tenant, as(agent), [`only-${to}`], 60);
          if (to === 'ASSIGNED') return (await store.getTask(tenant, task!.id))!;
          const w = await store.reportProgress(tenant, task!.id, as(agent), { percent: 1, message: null, leaseSeconds: 60 });
          if (to === 'WORKING') return w;
          return store.requestInput(tenant, task!.id, as(agent), { message: 'q' });
        };
        for (const state of ['SUBMITTED', 'ASSIGNED', 'WORKING', 'INPUT_REQUIRED'] as const) {
          const task = await make(state);
          expect(task.state).toBe(state);
          const canceled = await store.cancelTask(tenant, task.id, USER);
          expect(canceled).toMatchObject({ state: 'CANCELED', finishedAt: clock.at(), leaseExpiresAt: null });
          const err = await rejection(store.cancelTask(tenant, task.id, USER));
          expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'CANCELED', to: 'CANCELED' });
        }
        const done = await make('WORKING');
        await store.completeTask(tenant, done.id, as(agent), { result: 1 });
        const err = await rejection(store.cancelTask(tenant, done.id, USER));
        expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'COMPLETED', to: 'CANCELED' });
        expect((await store.getTask(tenant, done.id))?.state).toBe('COMPLETED');
      });

      it('lets only the holding agent complete, and changes nothing otherwise', async () => {
        const { store, tenant, clock, events } = setup();
        const [task] = await submitMany(store, tenant, clock, 1);
        const holder = randomUUID();
        await store.claimTask(tenant, as(holder), [], 60);
        const before = await store.getTask(tenant, task!.id);
        const published = events().length;
        const err = await rejection(store.completeTask(tenant, task!.id, as(randomUUID()), { result: 'stolen' }));
        expect(err.extensions.code).toBe('CONFLICT');
        expect(await store.getTask(tenant, task!.id)).toEqual(before);
        expect(events()).toHaveLength(published);
        const done = await store.completeTask(tenant, task!.id, as(holder), { result: { ok: true } });
        expect(done).toMatchObject({ state: 'COMPLETED', result: { ok: true }, version: before!.version + 1 });
        expect((await rejection(store.completeTask(tenant, randomUUID(), as(holder), { result: null }))).extensions.code).toBe('NOT_FOUND');
      });

      it('retries a failed attempt with backoff while retryable, fails for good when not', async () => {
        const { store, tenant, clock } = setup();
        const [task] = await submitMany(store, tenant, clock, 1);
        const agent = randomUUID();
        await store.claimTask(tenant, as(agent), [], 60);
        const retried = await store.failTask(tenant, task!.id, as(agent), { error: { message: 'busy', type: 'RATE_LIMIT', details: null }, retryable: true });
        expect(retried).toMatchObject({ state: 'SUBMITTED', availableAt: clock.at(1000), error: { message: 'busy', type: 'RATE_LIMIT' } });
        clock.advance(1000);
        await store.claimTask(tenant, as(agent), [], 60);
        const failed = await store.failTask(tenant, task!.id, as(agent), {
          error: { message: 'bad input', type: 'INVALID', details: { line: 3 } },
          retryable: false,
        });
        expect(failed).toMatchObject({ state: 'FAILED', attempts: 2, error: { message: 'bad input', type: 'INVALID', details: { line: 3 } } });
      });

      it('publishes events only after their transaction committed, and none for a rejected command', async () => {
        const { store, tenant, clock, events } = setup();
        const [task] = await submitMany(store, tenant, clock, 1);
        const agent = randomUUID();
        await store.claimTask(tenant, as(agent), [], 60);
        await store.reportProgress(tenant, task!.id, as(agent), { percent: 50, message: null, leaseSeconds: 60 });
        await rejection(store.requestInput(tenant, task!.id, as(randomUUID()), { message: 'q' }));
        await store.completeTask(tenant, task!.id, as(agent), { result: null });
        const stateEvents = observed.seen.filter((s) => s.event.tenantId === tenant && s.event.type === TASK_STATE_CHANGED);
        expect(stateEvents.map((s) => s.event.payload.to)).toEqual(['SUBMITTED', 'ASSIGNED', 'WORKING', 'COMPLETED']);
        // At publish time another connection already saw each change: the commit came first.
        for (const s of stateEvents) expect(s.committedState).toBe(s.event.payload.to);
        // The rejected requestInput published nothing: no INPUT_REQUIRED above, nothing extra here.
        expect(events().map((e) => e.type)).toEqual([TASK_STATE_CHANGED, TASK_STATE_CHANGED, TASK_STATE_CHANGED, TASK_PROGRESS_REPORTED, TASK_STATE_CHANGED]);
      });

      it('keeps tenants apart', async () => {
        const { store, tenant, clock } = setup();
        const other = `tenant-${randomUUID()}`;
        const [task] = await submitMany(store, tenant, clock, 1);
        expect(await store.getTask(other, task!.id)).toBeNull();
        expect((await store.listTasks(other, {}, pageRequest({}))).totalCount).toBe(0);
        expect(await store.claimTask(other, as(randomUUID()), [], 60)).toBeNull();
        expect((await rejection(store.cancelTask(other, task!.id, USER))).extensions.code).toBe('NOT_FOUND');
        expect((await store.getTask(tenant, task!.id))?.state).toBe('SUBMITTED');
        expect(await store.tasksByIds(other, [task!.id])).toEqual([]);
      });

      it('counts active tasks of 50 agents in one statement', async () => {
        const { store, tenant, clock } = setup();
        const agents = Array.from({ length: 50 }, () => randomUUID());
        await submitMany(store, tenant, clock, 6);
        // Agent 0 holds three tasks (one waiting for input), agent 1 holds one and completed one.
        for (const a of [0, 0, 0, 1, 1]) await store.claimTask(tenant, as(agents[a]!), [], 60);
        const held = await store.listTasks(tenant, { agentId: agents[1]! }, pageRequest({}));
        await store.completeTask(tenant, held.nodes[0]!.id, as(agents[1]!), { result: null });
        const zero = await store.listTasks(tenant, { agentId: agents[0]! }, pageRequest({}));
        await store.reportProgress(tenant, zero.nodes[0]!.id, as(agents[0]!), { percent: 1, message: null, leaseSeconds: 60 });
        await store.requestInput(tenant, zero.nodes[0]!.id, as(agents[0]!), { message: 'q' });

        const loaders = createLoaders(store, tenant);
        const before = t.database.stats.queries;
        const counts = await Promise.all(agents.map((a) => loaders.activeTaskCountByAgentId.load(a)));
        expect(t.database.stats.queries - before).toBe(1);
        expect(counts.slice(0, 3)).toEqual([3, 1, 0]);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(4);
      });

      it('pages the tasks of 50 agents in two statements, exactly as listTasks pages each agent', async () => {
        const { store, tenant, clock } = setup();
        const agents = Array.from({ length: 50 }, () => randomUUID());
        await submitMany(store, tenant, clock, 9);
        // Agent 0 holds four tasks and completed one, agent 1 holds two, agent 2 one; one task stays unclaimed.
        for (const a of [0, 0, 0, 0, 0, 1, 1]) await store.claimTask(tenant, as(agents[a]!), [], 60);
        const first = await store.listTasks(tenant, { agentId: agents[0]! }, pageRequest({}));
        await store.completeTask(tenant, first.nodes[2]!.id, as(agents[0]!), { result: null });
        // Another tenant's task held by the same agent id is not theirs to see.
        const other = `tenant-${randomUUID()}`;
        await store.submitTask(other, USER, spec({ title: 'elsewhere' }));
        await store.claimTask(other, as(agents[0]!), [], 60);
        await store.claimTask(tenant, as(agents[2]!), [], 60);

        const page1 = await store.listTasks(tenant, { agentId: agents[0]! }, pageRequest({ first: 2 }));
        expect(page1.totalCount).toBe(5);
        expect(page1.pageInfo.hasNextPage).toBe(true);
        const cases: { state: TaskState | null; first: number; after?: string | null }[] = [
          { state: null, first: 2 },
          { state: 'ASSIGNED', first: 1 },
          { state: 'COMPLETED', first: 3 },
          { state: null, first: 2, after: page1.pageInfo.endCursor },
          { state: 'ASSIGNED', first: 2, after: page1.pageInfo.endCursor },
        ];
        for (const { state, first: pageSize, after } of cases) {
          const loaders = createLoaders(store, tenant);
          const before = t.database.stats.queries;
          const batched = await Promise.all(agents.map((a) => loaders.tasksByAgentId(state, pageRequest({ first: pageSize, after })).load(a)));
          expect(t.database.stats.queries - before).toBe(2);

          const oneByOne = await Promise.all(agents.map((a) => store.listTasks(tenant, { agentId: a, state }, pageRequest({ first: pageSize, after }))));
          expect(batched).toEqual(oneByOne);
        }

        const loaders = createLoaders(store, tenant);
        const all = await Promise.all(agents.map((a) => loaders.tasksByAgentId(null, pageRequest({ first: 2 })).load(a)));
        expect(all.map((c) => c.totalCount).slice(0, 4)).toEqual([5, 2, 1, 0]);
        expect(all[0]!.nodes.map((n) => n.id)).toEqual(page1.nodes.map((n) => n.id));
        expect(all[3]).toEqual({
          edges: [],
          nodes: [],
          pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
          totalCount: 0,
        });
        const second = await Promise.all(agents.map((a) => loaders.tasksByAgentId(null, pageRequest({ first: 2, after: page1.pageInfo.endCursor })).load(a)));
        expect(second[0]!.nodes.map((n) => n.id)).toEqual(first.nodes.slice(2, 4).map((n) => n.id));
        expect(second[0]!.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
        // The same arguments within one request share a loader, so its cache answers without SQL.
        expect(loaders.tasksByAgentId(null, pageRequest({ first: 2 }))).toBe(loaders.tasksByAgentId(null, pageRequest({ first: 2 })));
        const before = t.database.stats.queries;
        await loaders.tasksByAgentId(null, pageRequest({ first: 2 })).load(agents[0]!);
        expect(t.database.stats.queries).toBe(before);
      });
    });

    describe('workflows', () => {
      const diamond = (extra: Partial<Record<'a' | 'b' | 'c' | 'd', Partial<WorkflowStepFields>>> = {}) =>
        validateWorkflowDefinition({
          name: 'diamond',
          steps: [step('a', [], { input: { mode: 'fast' }, ...extra.a }), step('b', ['a'], extra.b), step('c', ['a'], extra.c), step('d', ['b', 'c'], extra.d)],
        });

      async function steps(store: OrchestrationStore, tenant: string, run: WorkflowRunRow) {
        const rows = await store.stepRunsByRunIds(tenant, [run.id]);
        return Object.fromEntries(rows.map((r) => [r.stepId, r]));
      }

      /** Claims the released task of a step (its tag is unique to it) and completes it. */
      async function runStep(store: OrchestrationStore, tenant: string, stepId: string, result: unknown): Promise<TaskRow> {
        const agent = randomUUID();
        const task = await store.claimTask(tenant, as(agent), [`wf-${stepId}`], 60);
        expect(task?.workflowStepId).toBe(stepId);
        return store.completeTask(tenant, task!.id, as(agent), { result });
      }

      it('versions definitions by name', async () => {
        const { store, tenant, clock } = setup();
        const v1 = await store.createDefinition(tenant, diamond());
        clock.advance(1);
        const v2 = await store.createDefinition(tenant, diamond());
        expect([v1.version, v2.version]).toEqual([1, 2]);
        expect(v2.steps.map((s) => s.id)).toEqual(['a', 'b', 'c', 'd']);
        const listed = await store.listDefinitions(tenant, 'diamond', pageRequest({}));
        expect(listed.nodes.map((d) => d.version)).toEqual([2, 1]);
        expect((await store.listDefinitions(tenant, 'other', pageRequest({}))).totalCount).toBe(0);
        expect(await store.getDefinition(`tenant-${randomUUID()}`, v1.id)).toBeNull();
      });

      it('runs a diamond to SUCCEEDED, passing upstream results down', async () => {
        const { store, tenant, events } = setup();
        const def = await store.createDefinition(tenant, diamond());
        const run = await store.startRun(tenant, USER, def.id, { doc: 'report.pdf' });
        expect(run.status).toBe('RUNNING');
        let s = await steps(store, tenant, run);
        expect([s.a?.status, s.b?.status, s.c?.status, s.d?.status]).toEqual(['RUNNING', 'PENDING', 'PENDING', 'PENDING']);
        const a = await store.getTask(tenant, s.a!.taskId!);
        expect(a).toMatchObject({ workflowRunId: run.id, workflowStepId: 'a', input: { mode: 'fast', workflowInput: { doc: 'report.pdf' }, upstream: {} } });

        await runStep(store, tenant, 'a', { pages: 3 });
        s = await steps(store, tenant, run);
        expect([s.a?.status, s.b?.status, s.c?.status, s.d?.status]).toEqual(['SUCCEEDED', 'RUNNING', 'RUNNING', 'PENDING']);
        expect((await store.getTask(tenant, s.b!.taskId!))?.input).toEqual({ workflowInput: { doc: 'report.pdf' }, upstream: { a: { pages: 3 } } });

        await runStep(store, tenant, 'c', 'summary');
        expect((await steps(store, tenant, run)).d?.status).toBe('PENDING');
        await runStep(store, tenant, 'b', ['p1', 'p2', 'p3']);
        s = await steps(store, tenant, run);
        expect(s.d?.status).toBe('RUNNING');
        expect((await store.getTask(tenant, s.d!.taskId!))?.input).toEqual({
          workflowInput: { doc: 'report.pdf' },
          upstream: { b: ['p1', 'p2', 'p3'], c: 'summary' },
        });
        await runStep(store, tenant, 'd', 'done');

        const finished = await store.getRun(tenant, run.id);
        expect(finished).toMatchObject({ status: 'SUCCEEDED' });
        expect(finished?.finishedAt).not.toBeNull();
        expect(Object.values(await steps(store, tenant, run)).map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
        expect((await store.tasksByRunIds(tenant, [run.id])).map((x) => x.workflowStepId).sort()).toEqual(['a', 'b', 'c', 'd']);
        expect(
          events()
            .filter((e) => e.type === WORKFLOW_RUN_STATUS_CHANGED)
            .map((e) => e.payload),
        ).toEqual([
          { runId: run.id, from: null, to: 'RUNNING' },
          { runId: run.id, from: 'RUNNING', to: 'SUCCEEDED' },
        ]);
      });

      it('fails the run when a step fails after its retries and skips its dependents', async () => {
        const { store, tenant } = setup();
        const def = await store.createDefinition(tenant, diamond({ b: { retryPolicy: { maximumAttempts: 1 } } }));
        const run = await store.startRun(tenant, USER, def.id, null);
        await runStep(store, tenant, 'a', 1);
        const agent = randomUUID();
        const b = await store.claimTask(tenant, as(agent), ['wf-b'], 60);
        await store.failTask(tenant, b!.id, as(agent), { error: { message: 'broken', type: null, details: null }, retryable: true });

        expect(await store.getRun(tenant, run.id)).toMatchObject({ status: 'FAILED' });
        let s = await steps(store, tenant, run);
        expect([s.a?.status, s.b?.status, s.c?.status, s.d?.status]).toEqual(['SUCCEEDED', 'FAILED', 'RUNNING', 'SKIPPED']);
        expect(s.d?.taskId).toBeNull();
        // The other branch was already running: it may finish, but nothing new starts.
        await runStep(store, tenant, 'c', 2);
        s = await steps(store, tenant, run);
        expect([s.c?.status, s.d?.status]).toEqual(['SUCCEEDED', 'SKIPPED']);
        expect(await store.getRun(tenant, run.id)).toMatchObject({ status: 'FAILED' });
        expect(await store.tasksByRunIds(tenant, [run.id])).toHaveLength(3);
      });

      it('fails a chain when the sweeper expires its first step’s last attempt', async () => {
        const { store, tenant, clock } = setup();
        const def = await store.createDefinition(
          tenant,
          validateWorkflowDefinition({ name: 'chain', steps: [step('x', [], { retryPolicy: { maximumAttempts: 1 } }), step('y', ['x']), step('z', ['y'])] }),
        );
        const run = await store.startRun(tenant, USER, def.id, null);
        await store.claimTask(tenant, as(randomUUID()), ['wf-x'], 10);
        expect(await store.sweep(clock.now() + 10_000)).toEqual({ requeued: 0, failed: 1 });
        expect(await store.getRun(tenant, run.id)).toMatchObject({ status: 'FAILED' });
        const s = await steps(store, tenant, run);
        expect([s.x?.status, s.y?.status, s.z?.status]).toEqual(['FAILED', 'SKIPPED', 'SKIPPED']);
      });

      it('cancels a run with its open tasks, and refuses to cancel it twice', async () => {
        const { store, tenant } = setup();
        const def = await store.createDefinition(tenant, diamond());
        const run = await store.startRun(tenant, USER, def.id, null);
        await runStep(store, tenant, 'a', 1);
        const b = await store.claimTask(tenant, as(randomUUID()), ['wf-b'], 60);
        expect(b?.state).toBe('ASSIGNED');

        const canceled = await store.cancelRun(tenant, USER, run.id);
        expect(canceled).toMatchObject({ status: 'CANCELED' });
        expect(canceled.finishedAt).not.toBeNull();
        const s = await steps(store, tenant, run);
        expect([s.a?.status, s.b?.status, s.c?.status, s.d?.status]).toEqual(['SUCCEEDED', 'CANCELED', 'CANCELED', 'CANCELED']);
        const tasks = await store.tasksByRunIds(tenant, [run.id]);
        expect(Object.fromEntries(tasks.map((x) => [x.workflowStepId, x.state]))).toEqual({ a: 'COMPLETED', b: 'CANCELED', c: 'CANCELED' });

        const err = await rejection(store.cancelRun(tenant, USER, run.id));
        expect(err.extensions).toMatchObject({ code: 'CONFLICT', from: 'CANCELED', to: 'CANCELED' });
        expect((await rejection(store.cancelRun(tenant, USER, randomUUID()))).extensions.code).toBe('NOT_FOUND');
      });

      it('cancels the whole run when one of its tasks is canceled', async () => {
        const { store, tenant } = setup();
        const def = await store.createDefinition(tenant, diamond());
        const run = await store.startRun(tenant, USER, def.id, null);
        await runStep(store, tenant, 'a', 1);
        const s = await steps(store, tenant, run);
        await store.cancelTask(tenant, s.b!.taskId!, USER);
        expect(await store.getRun(tenant, run.id)).toMatchObject({ status: 'CANCELED' });
        expect((await store.getTask(tenant, s.c!.taskId!))?.state).toBe('CANCELED');
      });

      it('lists runs by definition and status, per tenant', async () => {
        const { store, tenant, clock } = setup();
        const def = await store.createDefinition(tenant, diamond());
        const r1 = await store.startRun(tenant, USER, def.id, null);
        clock.advance(1);
        const r2 = await store.startRun(tenant, USER, def.id, null);
        await store.cancelRun(tenant, USER, r1.id);
        expect((await store.listRuns(tenant, { definitionId: def.id }, pageRequest({}))).nodes.map((r) => r.id)).toEqual([r2.id, r1.id]);
        expect((await store.listRuns(tenant, { status: 'CANCELED' }, pageRequest({}))).nodes.map((r) => r.id)).toEqual([r1.id]);
        expect((await store.listRuns(`tenant-${randomUUID()}`, {}, pageRequest({}))).totalCount).toBe(0);
        expect((await rejection(store.startRun(tenant, USER, randomUUID(), null))).extensions.code).toBe('NOT_FOUND');
      });
    });

    describe('who acted: history, agents, skills', () => {
      const history = async (store: OrchestrationStore, tenant: string, id: string) => (await store.taskHistory(tenant, [id], 100)).get(id) ?? [];

      it('claims only tasks whose required tags the given (registered) tags all cover', async () => {
        const { store, tenant, clock } = setup();
        const both = await store.submitTask(tenant, USER, spec({ title: 'both', requiredSkillTags: ['pdf', 'ocr'], priority: 9 }));
        clock.advance(1);
        const pdf = await store.submitTask(tenant, USER, spec({ title: 'pdf', requiredSkillTags: ['pdf'] }));
        const agent = randomUUID();
        // Only 'pdf' registered: the higher-priority task needing 'ocr' as well is not this agent's.
        expect((await store.claimTask(tenant, as(agent), ['pdf'], 60))?.id).toBe(pdf.id);
        expect(await store.claimTask(tenant, as(agent), ['pdf'], 60)).toBeNull();
        expect((await store.claimTask(tenant, as(agent), ['ocr', 'pdf'], 60))?.id).toBe(both.id);
      });

      it('records every state change, oldest first, with the actor and the agent it acted as', async () => {
        const { store, tenant, clock } = setup();
        const task = await store.submitTask(tenant, USER, spec({ requiredSkillTags: ['h'] }));
        const agent = randomUUID();
        const delegate = { subject: 'user:operator', agentId: agent };
        clock.advance(1);
        await store.claimTask(tenant, delegate, ['h'], 60);
        clock.advance(1);
        await store.reportProgress(tenant, task.id, as(agent), { percent: 10, message: null, leaseSeconds: 60 });
        // A progress report that does not change the state is an event, not a history entry.
        await store.reportProgress(tenant, task.id, as(agent), { percent: 20, message: null, leaseSeconds: 60 });
        await store.requestInput(tenant, task.id, as(agent), { message: 'Which year?' });
        await store.provideInput(tenant, task.id, USER, { input: { year: 2025 }, leaseSeconds: 60 });
        await store.failTask(tenant, task.id, as(agent), { error: { message: 'flaky', type: null, details: null }, retryable: true });
        const entries = await history(store, tenant, task.id);
        expect(entries.map((e) => [e.kind, e.from, e.to, e.actor, e.onBehalfOf])).toEqual([
          ['SUBMITTED', null, 'SUBMITTED', 'user:tester', null],
          ['CLAIMED', 'SUBMITTED', 'ASSIGNED', 'user:operator', agent],
          ['STARTED', 'ASSIGNED', 'WORKING', `agent:${agent}`, agent],
          ['INPUT_REQUESTED', 'WORKING', 'INPUT_REQUIRED', `agent:${agent}`, agent],
          ['INPUT_PROVIDED', 'INPUT_REQUIRED', 'WORKING', 'user:tester', null],
          ['RETRY_SCHEDULED', 'WORKING', 'SUBMITTED', `agent:${agent}`, agent],
        ]);
        expect(entries[3]?.message).toBe('Which year?');
        expect(entries[5]?.message).toBe('flaky');
        expect(entries[1]?.at).toBe(clock.at(-1));
        expect((await store.taskHistory(tenant, [task.id], 2)).get(task.id)).toHaveLength(2);
        // Another tenant sees none of it.
        expect((await store.taskHistory(`tenant-${randomUUID()}`, [task.id], 100)).get(task.id)).toBeUndefined();
      });

      it('records the lease sweeper and the workflow engine as system actors', async () => {
        const { store, tenant, clock } = setup();
        const def = await store.createDefinition(tenant, validateWorkflowDefinition({ name: 'pair', steps: [step('p'), step('q', ['p'])] }));
        const run = await store.startRun(tenant, USER, def.id, null);
        const agent = randomUUID();
        const p = await store.claimTask(tenant, as(agent), ['wf-p'], 10);
        await store.sweep(clock.now() + 10_000);
        expect((await history(store, tenant, p!.id)).map((e) => [e.kind, e.actor])).toEqual([
          ['SUBMITTED', 'system:workflow-engine'],
          ['CLAIMED', `agent:${agent}`],
          ['LEASE_EXPIRED', 'system:lease-sweeper'],
        ]);
        await store.cancelRun(tenant, USER, run.id);
        const last = (await history(store, tenant, p!.id)).at(-1);
        expect(last).toMatchObject({ kind: 'CANCELED', actor: 'system:workflow-engine', message: `workflow run ${run.id} canceled` });
      });

      it("releases a retired agent's held tasks for another agent, once, without using up an attempt", async () => {
        const { store, tenant, clock, events } = setup();
        const [a, b, c] = await submitMany(store, tenant, clock, 3, { retryPolicy: { maximumAttempts: 1 } });
        const retiring = randomUUID();
        const other = randomUUID();
        await store.claimTask(tenant, as(retiring), [], 60);
        await store.claimTask(tenant, as(retiring), [], 60);
        await store.reportProgress(tenant, a!.id, as(retiring), { percent: 5, message: null, leaseSeconds: 60 });
        await store.claimTask(tenant, as(other), [], 60);
        await store.completeTask(tenant, b!.id, as(retiring), { result: 'done before retiring' });

        // Two replicas handling the same event: the second finds nothing left to release.
        const [first, second] = await Promise.all([store.releaseAgentTasks(tenant, retiring), store.releaseAgentTasks(tenant, retiring)]);
        expect(first + second).toBe(1);
        expect(await store.releaseAgentTasks(tenant, retiring)).toBe(0);

        const released = await store.getTask(tenant, a!.id);
        expect(released).toMatchObject({ state: 'SUBMITTED', attempts: 0, leaseExpiresAt: null, availableAt: clock.at() });
        expect((await store.getTask(tenant, b!.id))?.state).toBe('COMPLETED');
        expect(await store.getTask(tenant, c!.id)).toMatchObject({ state: 'ASSIGNED', agentId: other });
        expect((await history(store, tenant, a!.id)).at(-1)).toMatchObject({
          kind: 'RELEASED',
          from: 'WORKING',
          to: 'SUBMITTED',
          actor: 'system:agent-retirement',
          message: `agent "${retiring}" was retired`,
        });
        expect(
          events()
            .filter((e) => e.type === TASK_STATE_CHANGED && e.subjectId === a!.id)
            .at(-1)?.payload,
        ).toMatchObject({ from: 'WORKING', to: 'SUBMITTED' });

        // maximumAttempts 1 and the released attempt given back: the next agent gets a full attempt.
        const next = await store.claimTask(tenant, as(other), [], 60);
        expect(next).toMatchObject({ id: a!.id, attempts: 1 });
        const failed = await store.failTask(tenant, a!.id, as(other), { error: { message: 'no', type: null, details: null }, retryable: true });
        expect(failed.state).toBe('FAILED');
      });
    });
  });
});
