import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  advanceRun,
  assertDag,
  backoffSeconds,
  cancel,
  canTransition,
  claim,
  complete,
  expire,
  expiryReason,
  fail,
  failAttempt,
  isClaimable,
  leaseSeconds,
  newTask,
  percent,
  provideInput,
  reportProgress,
  requestInput,
  retryPolicy,
  stepTaskInput,
  validateTaskSpec,
  validateWorkflowDefinition,
  type StepRunStatus,
  type Task,
  type TaskState,
  type WorkflowStepFields,
} from '../../subgraphs/orchestration/domain.ts';

const T0 = Date.parse('2026-05-01T10:00:00.000Z');
const AGENT = '00000000-0000-4000-8000-00000000000a';
const OTHER = '00000000-0000-4000-8000-00000000000b';

function codeOf(fn: () => unknown): { code: unknown; extensions: Record<string, unknown>; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    const e = err as GraphQLError;
    return { code: e.extensions.code, extensions: e.extensions, message: e.message };
  }
  throw new Error('expected an error');
}

function task(overrides: Partial<Parameters<typeof validateTaskSpec>[0]> = {}): Task {
  return newTask(validateTaskSpec({ title: 'Summarise', ...overrides }), { id: 'task-1', tenantId: 't' }, T0);
}

const claimed = (t = task()) => claim(t, AGENT, 60, T0);
const working = (t = task()) => reportProgress(claimed(t), { agentId: AGENT, percent: 10, message: null, leaseSeconds: 60 }, T0 + 1000);
const waiting = (t = task()) => requestInput(working(t), { agentId: AGENT, message: 'Which region?' }, T0 + 2000);

describe('task state machine', () => {
  it('runs the happy path SUBMITTED → ASSIGNED → WORKING ⇄ INPUT_REQUIRED → COMPLETED', () => {
    const submitted = task();
    expect(submitted).toMatchObject({ state: 'SUBMITTED', attempts: 0, availableAt: new Date(T0).toISOString(), version: 1 });

    const a = claimed(submitted);
    expect(a).toMatchObject({ state: 'ASSIGNED', agentId: AGENT, attempts: 1, version: 2 });
    expect(a.leaseExpiresAt).toBe(new Date(T0 + 60_000).toISOString());
    expect(a.attemptDeadlineAt).toBe(new Date(T0 + 300_000).toISOString());
    expect(a.startedAt).toBe(new Date(T0).toISOString());

    const w = reportProgress(a, { agentId: AGENT, percent: 40, message: 'reading', leaseSeconds: 120 }, T0 + 10_000);
    expect(w.state).toBe('WORKING');
    expect(w.progress).toEqual({ percent: 40, message: 'reading', updatedAt: new Date(T0 + 10_000).toISOString() });
    expect(w.leaseExpiresAt).toBe(new Date(T0 + 130_000).toISOString());

    const ir = requestInput(w, { agentId: AGENT, message: 'Which region?' }, T0 + 20_000);
    expect(ir.state).toBe('INPUT_REQUIRED');
    expect(ir.leaseExpiresAt).toBeNull();

    const back = provideInput(ir, { input: { region: 'eu' }, leaseSeconds: 60 }, T0 + 80_000);
    expect(back.state).toBe('WORKING');
    expect(back.leaseExpiresAt).toBe(new Date(T0 + 140_000).toISOString());
    // The 60 s spent waiting for input do not count against the attempt's timeout.
    expect(back.attemptDeadlineAt).toBe(new Date(T0 + 360_000).toISOString());

    const done = complete(back, { agentId: AGENT, result: { summary: 'ok' } }, T0 + 90_000);
    expect(done).toMatchObject({ state: 'COMPLETED', result: { summary: 'ok' }, leaseExpiresAt: null, finishedAt: new Date(T0 + 90_000).toISOString() });
  });

  it('merges provided input over an object input and replaces anything else', () => {
    expect(provideInput(waiting(task({ input: { doc: 'a', region: null } })), { input: { region: 'eu' }, leaseSeconds: 60 }, T0 + 3000).input).toEqual({
      doc: 'a',
      region: 'eu',
    });
    expect(provideInput(waiting(task({ input: 'text' })), { input: [1, 2], leaseSeconds: 60 }, T0 + 3000).input).toEqual([1, 2]);
  });

  it('lists the legal transitions and nothing else', () => {
    const legal: [TaskState, TaskState][] = [
      ['SUBMITTED', 'ASSIGNED'],
      ['SUBMITTED', 'CANCELED'],
      ['ASSIGNED', 'WORKING'],
      ['ASSIGNED', 'SUBMITTED'],
      ['WORKING', 'INPUT_REQUIRED'],
      ['INPUT_REQUIRED', 'WORKING'],
      ['WORKING', 'COMPLETED'],
      ['INPUT_REQUIRED', 'CANCELED'],
    ];
    for (const [from, to] of legal) expect(canTransition(from, to), `${from} → ${to}`).toBe(true);
    const illegal: [TaskState, TaskState][] = [
      ['SUBMITTED', 'WORKING'],
      ['SUBMITTED', 'COMPLETED'],
      ['INPUT_REQUIRED', 'COMPLETED'],
      ['COMPLETED', 'CANCELED'],
      ['FAILED', 'SUBMITTED'],
      ['CANCELED', 'ASSIGNED'],
    ];
    for (const [from, to] of illegal) expect(canTransition(from, to), `${from} → ${to}`).toBe(false);
  });

  it('rejects illegal commands with a CONFLICT naming from and to', () => {
    const e1 = codeOf(() => complete(task(), { agentId: AGENT, result: null }, T0));
    expect(e1).toMatchObject({ code: 'CONFLICT', extensions: { from: 'SUBMITTED', to: 'COMPLETED' } });
    expect(e1.message).toContain('SUBMITTED');
    expect(e1.message).toContain('COMPLETED');

    expect(codeOf(() => claim(claimed(), OTHER, 60, T0)).extensions).toMatchObject({ from: 'ASSIGNED', to: 'ASSIGNED' });
    expect(codeOf(() => requestInput(claimed(), { agentId: AGENT, message: 'q' }, T0)).extensions).toMatchObject({ from: 'ASSIGNED', to: 'INPUT_REQUIRED' });
    // Progress does not answer a question: only provideTaskInput leaves INPUT_REQUIRED.
    expect(codeOf(() => reportProgress(waiting(), { agentId: AGENT, percent: 50, message: null, leaseSeconds: 60 }, T0 + 5000)).extensions).toMatchObject({
      from: 'INPUT_REQUIRED',
      to: 'WORKING',
    });
    expect(codeOf(() => provideInput(working(), { input: {}, leaseSeconds: 60 }, T0)).code).toBe('CONFLICT');
  });

  it('cancels from every non-terminal state and refuses to cancel an ended task', () => {
    const open: Task[] = [task(), claimed(), working(), waiting()];
    for (const t of open) {
      const c = cancel(t, T0 + 9000);
      expect(c.state, t.state).toBe('CANCELED');
      expect(c.leaseExpiresAt).toBeNull();
      expect(c.finishedAt).toBe(new Date(T0 + 9000).toISOString());
    }
    const ended: Task[] = [
      complete(working(), { agentId: AGENT, result: 1 }, T0 + 5000),
      fail(
        working(task({ retryPolicy: { maximumAttempts: 1 } })),
        { agentId: AGENT, error: { message: 'x', type: null, details: null }, retryable: true },
        T0 + 5000,
      ),
      cancel(task(), T0),
    ];
    for (const t of ended) {
      expect(codeOf(() => cancel(t, T0 + 9000)).extensions, t.state).toMatchObject({ code: 'CONFLICT', from: t.state, to: 'CANCELED' });
    }
  });

  it('lets only the holding agent report, request input, complete or fail', () => {
    const w = working();
    const err = { message: 'boom', type: null, details: null };
    for (const attempt of [
      () => reportProgress(w, { agentId: OTHER, percent: 1, message: null, leaseSeconds: 60 }, T0),
      () => requestInput(w, { agentId: OTHER, message: 'q' }, T0),
      () => complete(w, { agentId: OTHER, result: null }, T0),
      () => fail(w, { agentId: OTHER, error: err, retryable: true }, T0),
    ]) {
      expect(codeOf(attempt).code).toBe('CONFLICT');
    }
  });

  it('matches claimers on every required tag and on availableAt', () => {
    const t = task({ requiredSkillTags: ['pdf', 'summarise'] });
    expect(isClaimable(t, ['summarise', 'pdf', 'extra'], T0)).toBe(true);
    expect(isClaimable(t, ['summarise'], T0)).toBe(false);
    expect(isClaimable({ ...t, availableAt: new Date(T0 + 1).toISOString() }, ['pdf', 'summarise'], T0)).toBe(false);
  });
});

describe('retry policy', () => {
  it('defaults to Temporal’s values', () => {
    expect(retryPolicy(undefined)).toEqual({ initialIntervalSeconds: 1, backoffCoefficient: 2, maximumIntervalSeconds: 100, maximumAttempts: 3 });
    expect(retryPolicy({ initialIntervalSeconds: 3 }).maximumIntervalSeconds).toBe(300);
  });

  it('rejects invalid policies naming the field', () => {
    expect(codeOf(() => retryPolicy({ backoffCoefficient: 0.5 })).extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'retryPolicy.backoffCoefficient',
    });
    expect(codeOf(() => retryPolicy({ maximumAttempts: 0 })).extensions.field).toBe('retryPolicy.maximumAttempts');
    expect(codeOf(() => retryPolicy({ maximumAttempts: 101 })).extensions.field).toBe('retryPolicy.maximumAttempts');
    expect(codeOf(() => retryPolicy({ maximumAttempts: 2.5 })).extensions.field).toBe('retryPolicy.maximumAttempts');
    expect(codeOf(() => retryPolicy({ initialIntervalSeconds: 0 })).extensions.field).toBe('retryPolicy.initialIntervalSeconds');
    expect(codeOf(() => retryPolicy({ initialIntervalSeconds: 10, maximumIntervalSeconds: 5 })).extensions.field).toBe('retryPolicy.maximumIntervalSeconds');
  });

  it('backs off exponentially up to the maximum interval', () => {
    const p = retryPolicy({ initialIntervalSeconds: 1, backoffCoefficient: 2, maximumIntervalSeconds: 10, maximumAttempts: 10 });
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffSeconds(p, n))).toEqual([1, 2, 4, 8, 10, 10]);
    const flat = retryPolicy({ initialIntervalSeconds: 5, backoffCoefficient: 1 });
    expect([1, 2, 3].map((n) => backoffSeconds(flat, n))).toEqual([5, 5, 5]);
    // A huge exponent overflows to Infinity and is still capped.
    expect(backoffSeconds(retryPolicy({ backoffCoefficient: 100, maximumAttempts: 100 }), 100)).toBe(100);
  });

  it('retries a failed attempt while attempts remain, then fails for good', () => {
    const error = { message: 'rate limited', type: 'RATE_LIMIT', details: null };
    let t = task({ retryPolicy: { initialIntervalSeconds: 2, backoffCoefficient: 3, maximumAttempts: 3 } });
    let now = T0;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      t = claim(t, AGENT, 60, now);
      t = fail(t, { agentId: AGENT, error, retryable: true }, now);
      expect(t.state).toBe('SUBMITTED');
      expect(t.error).toEqual(error);
      expect(t.attempts).toBe(attempt);
      delays.push((Date.parse(t.availableAt) - now) / 1000);
      expect(isClaimable(t, [], now)).toBe(false);
      now = Date.parse(t.availableAt);
      expect(isClaimable(t, [], now)).toBe(true);
    }
    expect(delays).toEqual([2, 6]);
    t = claim(t, AGENT, 60, now);
    t = fail(t, { agentId: AGENT, error, retryable: true }, now);
    expect(t).toMatchObject({ state: 'FAILED', attempts: 3, error, finishedAt: new Date(now).toISOString() });
  });

  it('fails at once when the failure is not retryable or the policy allows one attempt', () => {
    const error = { message: 'bad document', type: 'INVALID', details: { page: 3 } };
    expect(fail(working(), { agentId: AGENT, error, retryable: false }, T0).state).toBe('FAILED');
    expect(failAttempt(claimed(task({ retryPolicy: { maximumAttempts: 1 } })), error, true, T0).state).toBe('FAILED');
  });
});

describe('leases and timeouts', () => {
  it('expires an unrenewed lease as a retryable failed attempt with backoff', () => {
    const a = claim(task(), AGENT, 30, T0);
    expect(expiryReason(a, T0 + 29_999)).toBeNull();
    expect(expire(a, T0 + 29_999)).toBeNull();
    const e = expire(a, T0 + 30_000);
    expect(e).toMatchObject({ state: 'SUBMITTED', agentId: AGENT, leaseExpiresAt: null, error: { type: 'LEASE_EXPIRED' } });
    expect(e?.availableAt).toBe(new Date(T0 + 31_000).toISOString());
  });

  it('times an attempt out from its claim even while progress renews the lease', () => {
    let t = claim(task({ timeoutSeconds: 100 }), AGENT, 60, T0);
    for (const at of [50_000, 90_000]) t = reportProgress(t, { agentId: AGENT, percent: 50, message: null, leaseSeconds: 60 }, T0 + at);
    expect(expiryReason(t, T0 + 99_999)).toBeNull();
    expect(Date.parse(t.leaseExpiresAt ?? '')).toBeGreaterThan(T0 + 100_000);
    expect(expiryReason(t, T0 + 100_000)).toBe('TIMEOUT');
    expect(expire(t, T0 + 100_000)?.error?.type).toBe('TIMEOUT');
  });

  it('prefers TIMEOUT when both the lease and the deadline passed, and fails at the last attempt', () => {
    const t = claim(task({ timeoutSeconds: 10, retryPolicy: { maximumAttempts: 1 } }), AGENT, 5, T0);
    const e = expire(t, T0 + 20_000);
    expect(e).toMatchObject({ state: 'FAILED', error: { type: 'TIMEOUT' } });
  });

  it('runs neither clock while waiting for input', () => {
    const t = waiting(task({ timeoutSeconds: 10 }));
    expect(expiryReason(t, T0 + 3_600_000)).toBeNull();
  });
});

describe('input validation', () => {
  it('applies defaults and bounds', () => {
    const spec = validateTaskSpec({ title: '  Summarise  ', requiredSkillTags: ['pdf', 'pdf', ' nlp '] });
    expect(spec).toMatchObject({ title: 'Summarise', priority: 0, timeoutSeconds: 300, requiredSkillTags: ['pdf', 'nlp'], input: null });
    const bad: [Parameters<typeof validateTaskSpec>[0], string][] = [
      [{ title: '' }, 'title'],
      [{ title: 'x'.repeat(201) }, 'title'],
      [{ title: 'x', priority: 1001 }, 'priority'],
      [{ title: 'x', priority: -1001 }, 'priority'],
      [{ title: 'x', timeoutSeconds: 0 }, 'timeoutSeconds'],
      [{ title: 'x', timeoutSeconds: 86_401 }, 'timeoutSeconds'],
      [{ title: 'x', requiredSkillTags: [''] }, 'requiredSkillTags[0]'],
      [{ title: 'x', input: { blob: 'x'.repeat(300 * 1024) } }, 'input'],
    ];
    for (const [input, field] of bad) expect(codeOf(() => validateTaskSpec(input)).extensions, field).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(leaseSeconds(undefined)).toBe(60);
    expect(codeOf(() => leaseSeconds(4)).code).toBe('BAD_USER_INPUT');
    expect(codeOf(() => leaseSeconds(3601)).code).toBe('BAD_USER_INPUT');
    expect(codeOf(() => percent(101)).code).toBe('BAD_USER_INPUT');
    expect(codeOf(() => percent(-1)).code).toBe('BAD_USER_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------

const step = (id: string, dependsOn: string[] = [], extra: Partial<WorkflowStepFields> = {}): WorkflowStepFields => ({
  id,
  title: `Step ${id}`,
  dependsOn,
  ...extra,
});

describe('workflow definitions', () => {
  it('accepts a DAG and fills step defaults', () => {
    const def = validateWorkflowDefinition({ name: 'pipeline', steps: [step('a'), step('b', ['a', 'a']), step('c', ['a', 'b'])] });
    expect(def.steps.map((s) => [s.id, s.dependsOn])).toEqual([
      ['a', []],
      ['b', ['a']],
      ['c', ['a', 'b']],
    ]);
    expect(def.steps[0]).toMatchObject({ priority: 0, timeoutSeconds: 300, retryPolicy: { maximumAttempts: 3 }, input: null });
  });

  it('rejects a cycle naming a step on it', () => {
    const e = codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('a', ['c']), step('b', ['a']), step('c', ['b'])] }));
    expect(e.code).toBe('BAD_USER_INPUT');
    expect(e.message).toMatch(/cycle/);
    expect(['a', 'b', 'c']).toContain(e.extensions.step);
    expect(codeOf(() => assertDag([{ id: 'self', dependsOn: ['self'] }])).extensions.step).toBe('self');
  });

  it('rejects unknown dependencies and duplicate ids naming the step', () => {
    const unknown = codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('a'), step('b', ['nope'])] }));
    expect(unknown).toMatchObject({ code: 'BAD_USER_INPUT', extensions: { step: 'b' } });
    expect(unknown.message).toContain('nope');
    const dup = codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('a'), step('a')] }));
    expect(dup).toMatchObject({ code: 'BAD_USER_INPUT', extensions: { step: 'a' } });
  });

  it('bounds the steps and their fields', () => {
    expect(codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [] })).extensions.field).toBe('steps');
    const many = Array.from({ length: 101 }, (_, i) => step(`s${i}`));
    expect(codeOf(() => validateWorkflowDefinition({ name: 'w', steps: many })).extensions.field).toBe('steps');
    expect(codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('a', [], { input: [1] })] })).extensions.field).toBe('steps[0].input');
    expect(codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('has space')] })).extensions.field).toBe('steps[0].id');
    expect(codeOf(() => validateWorkflowDefinition({ name: 'w', steps: [step('a', [], { priority: 5000 })] })).extensions.field).toBe('steps[0].priority');
  });
});

describe('releasing steps', () => {
  const diamond = [
    { id: 'a', dependsOn: [] },
    { id: 'b', dependsOn: ['a'] },
    { id: 'c', dependsOn: ['a'] },
    { id: 'd', dependsOn: ['b', 'c'] },
  ];
  const chain = [
    { id: 'x', dependsOn: [] },
    { id: 'y', dependsOn: ['x'] },
    { id: 'z', dependsOn: ['y'] },
  ];
  const st = (o: Record<string, StepRunStatus>) => new Map(Object.entries(o));

  it('starts the roots, then each step once all its dependencies succeeded (diamond)', () => {
    expect(advanceRun(diamond, st({}))).toEqual({ start: ['a'], skip: [], cancel: [], status: 'RUNNING' });
    expect(advanceRun(diamond, st({ a: 'SUCCEEDED' })).start).toEqual(['b', 'c']);
    // The join waits for both branches.
    expect(advanceRun(diamond, st({ a: 'SUCCEEDED', b: 'SUCCEEDED', c: 'RUNNING' })).start).toEqual([]);
    expect(advanceRun(diamond, st({ a: 'SUCCEEDED', b: 'SUCCEEDED', c: 'SUCCEEDED' })).start).toEqual(['d']);
    expect(advanceRun(diamond, st({ a: 'SUCCEEDED', b: 'SUCCEEDED', c: 'SUCCEEDED', d: 'SUCCEEDED' }))).toEqual({
      start: [],
      skip: [],
      cancel: [],
      status: 'SUCCEEDED',
    });
  });

  it('fails the run as soon as a step failed and skips what depends on it (diamond)', () => {
    const r = advanceRun(diamond, st({ a: 'SUCCEEDED', b: 'FAILED', c: 'RUNNING', d: 'PENDING' }));
    expect(r).toEqual({ start: [], skip: ['d'], cancel: [], status: 'FAILED' });
  });

  it('skips every step downstream of a failure (chain)', () => {
    expect(advanceRun(chain, st({ x: 'FAILED' }))).toEqual({ start: [], skip: ['y', 'z'], cancel: [], status: 'FAILED' });
    expect(advanceRun(chain, st({ x: 'SUCCEEDED' })).start).toEqual(['y']);
    expect(advanceRun(chain, st({ x: 'SUCCEEDED', y: 'SUCCEEDED', z: 'SUCCEEDED' })).status).toBe('SUCCEEDED');
  });

  it('cancels every open step when the run is canceled or one of its steps was', () => {
    expect(advanceRun(diamond, st({ a: 'SUCCEEDED', b: 'RUNNING', c: 'SUCCEEDED' }), { cancel: true })).toEqual({
      start: [],
      skip: [],
      cancel: ['b', 'd'],
      status: 'CANCELED',
    });
    expect(advanceRun(chain, st({ x: 'CANCELED' }))).toMatchObject({ cancel: ['y', 'z'], status: 'CANCELED' });
  });

  it('builds a released step’s input from its own input, the run input and upstream results', () => {
    const results = new Map<string, unknown>([
      ['b', { words: 10 }],
      ['c', 'text'],
    ]);
    expect(stepTaskInput({ input: { lang: 'en' }, dependsOn: ['b', 'c'] }, { doc: 'd1' }, results)).toEqual({
      lang: 'en',
      workflowInput: { doc: 'd1' },
      upstream: { b: { words: 10 }, c: 'text' },
    });
    expect(stepTaskInput({ input: null, dependsOn: [] }, undefined, new Map())).toEqual({ workflowInput: null, upstream: {} });
  });
});
