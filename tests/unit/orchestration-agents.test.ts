// Who acts on a task (an agent as itself, a delegate for a named agent), which tags a claim may
// use, releasing a retired agent's task, and the history entry of each state change.
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  actingAgent,
  claim,
  claimTags,
  complete,
  expire,
  expiryNote,
  fail,
  historyEntry,
  newTask,
  release,
  reportProgress,
  requestInput,
  SYSTEM_ACTORS,
  validateTaskSpec,
  type Caller,
  type Task,
} from '../../subgraphs/orchestration/domain.ts';

const T0 = Date.parse('2026-05-01T10:00:00.000Z');
const AGENT = '00000000-0000-4000-8000-00000000000a';
const OTHER = '00000000-0000-4000-8000-00000000000b';

function refusal(fn: () => unknown): GraphQLError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    return err as GraphQLError;
  }
  throw new Error('expected a refusal');
}

const agentCaller: Caller = { kind: 'apiKey', subject: 'apikey:k1', scopes: ['tasks:write'], agentId: AGENT };
const human = (scopes: string[]): Caller => ({ kind: 'user', subject: 'alice@example.com', scopes, agentId: null });

const task = (fields: Record<string, unknown> = {}): Task =>
  newTask(validateTaskSpec({ title: 't', requiredSkillTags: ['pdf'], ...fields }), { id: '00000000-0000-4000-8000-000000000001', tenantId: 'acme' }, T0);

describe('actingAgent', () => {
  it('lets an agent act as itself, with or without naming itself', () => {
    expect(actingAgent(agentCaller, null)).toEqual({ subject: 'apikey:k1', agentId: AGENT });
    expect(actingAgent(agentCaller, AGENT)).toEqual({ subject: 'apikey:k1', agentId: AGENT });
  });

  it('refuses an agent naming another agent (AGENT_MISMATCH), even with tasks:delegate', () => {
    const err = refusal(() => actingAgent({ ...agentCaller, scopes: ['tasks:write', 'tasks:delegate'] }, OTHER));
    expect(err.extensions).toMatchObject({ code: 'AGENT_MISMATCH', agentId: AGENT, requestedAgentId: OTHER });
  });

  it('makes a caller that is not an agent name the agent (AGENT_REQUIRED)', () => {
    expect(refusal(() => actingAgent(human(['tasks:write', 'tasks:delegate']), null)).extensions.code).toBe('AGENT_REQUIRED');
  });

  it('lets a delegate act for a named agent only with tasks:delegate', () => {
    expect(refusal(() => actingAgent(human(['tasks:write']), AGENT)).extensions).toMatchObject({ code: 'DELEGATION_FORBIDDEN', agentId: AGENT });
    expect(actingAgent(human(['tasks:write', 'tasks:delegate']), AGENT)).toEqual({ subject: 'alice@example.com', agentId: AGENT });
  });

  it('names a caller without a subject by its kind', () => {
    expect(actingAgent({ kind: 'service', subject: null, scopes: ['tasks:delegate'] }, AGENT).subject).toBe('service');
  });
});

describe('claimTags', () => {
  const active = { id: AGENT, status: 'ACTIVE', skillTags: ['pdf', 'ocr', 'pdf'] };

  it('uses every registered tag when the claim names none', () => {
    expect(claimTags(active, null).sort()).toEqual(['ocr', 'pdf']);
  });

  it('narrows to the requested tags, an empty list included', () => {
    expect(claimTags(active, ['ocr'])).toEqual(['ocr']);
    expect(claimTags(active, [])).toEqual([]);
  });

  it('refuses tags the agent did not register, naming them (SKILLS_NOT_REGISTERED)', () => {
    const err = refusal(() => claimTags(active, ['pdf', 'translate', 'legal']));
    expect(err.extensions).toMatchObject({ code: 'SKILLS_NOT_REGISTERED', unregisteredTags: ['translate', 'legal'] });
    expect(err.message).toContain('"translate"');
  });

  it.each(['REGISTERED', 'PAUSED', 'RETIRED'])('refuses an agent in status %s (AGENT_NOT_ACTIVE)', (status) => {
    expect(refusal(() => claimTags({ ...active, status }, null)).extensions).toMatchObject({ code: 'AGENT_NOT_ACTIVE', status, agentId: AGENT });
  });
});

describe('release', () => {
  it('puts a held task back to SUBMITTED at once, giving the attempt back', () => {
    const held = reportProgress(claim(task(), AGENT, 60, T0), { agentId: AGENT, percent: 10, message: null, leaseSeconds: 60 }, T0 + 1000);
    const released = release(held, AGENT, T0 + 2000)!;
    expect(released).toMatchObject({
      state: 'SUBMITTED',
      attempts: 0,
      leaseExpiresAt: null,
      attemptDeadlineAt: null,
      availableAt: new Date(T0 + 2000).toISOString(),
      error: null,
    });
    expect(released.version).toBe(held.version + 1);
  });

  it('releases a task waiting for input too', () => {
    const working = reportProgress(claim(task(), AGENT, 60, T0), { agentId: AGENT, percent: 10, message: null, leaseSeconds: 60 }, T0);
    expect(release(requestInput(working, { agentId: AGENT, message: 'q' }, T0), AGENT, T0)?.state).toBe('SUBMITTED');
  });

  it('changes nothing for another agent, an unheld or an ended task (so releasing twice is harmless)', () => {
    const held = claim(task(), AGENT, 60, T0);
    expect(release(held, OTHER, T0)).toBeNull();
    expect(release(task(), AGENT, T0)).toBeNull();
    expect(release(release(held, AGENT, T0)!, AGENT, T0)).toBeNull();
    expect(release(complete(held, { agentId: AGENT, result: 1 }, T0), AGENT, T0)).toBeNull();
  });
});

describe('historyEntry', () => {
  const asAgent = { subject: 'apikey:k1', agentId: AGENT };

  it('records creation, claim and start with who acted and for which agent', () => {
    const created = task();
    expect(historyEntry(null, created, { subject: 'alice', agentId: null })).toEqual({
      at: created.updatedAt,
      kind: 'SUBMITTED',
      from: null,
      to: 'SUBMITTED',
      actor: 'alice',
      onBehalfOf: null,
      message: null,
    });
    const claimed = claim(created, AGENT, 60, T0 + 1);
    expect(historyEntry(created, claimed, asAgent)).toMatchObject({
      kind: 'CLAIMED',
      from: 'SUBMITTED',
      to: 'ASSIGNED',
      actor: 'apikey:k1',
      onBehalfOf: AGENT,
    });
    const started = reportProgress(claimed, { agentId: AGENT, percent: 1, message: null, leaseSeconds: 60 }, T0 + 2);
    expect(historyEntry(claimed, started, asAgent).kind).toBe('STARTED');
    const asked = requestInput(started, { agentId: AGENT, message: 'Which year?' }, T0 + 3);
    expect(historyEntry(started, asked, asAgent)).toMatchObject({ kind: 'INPUT_REQUESTED', message: 'Which year?' });
  });

  it("tells a scheduled retry from a final failure, with the failure's message", () => {
    const claimed = claim(task(), AGENT, 60, T0);
    const retry = fail(claimed, { agentId: AGENT, error: { message: 'busy', type: null, details: null }, retryable: true }, T0);
    expect(historyEntry(claimed, retry, asAgent)).toMatchObject({ kind: 'RETRY_SCHEDULED', to: 'SUBMITTED', message: 'busy' });
    const final = fail(claimed, { agentId: AGENT, error: { message: 'broken', type: null, details: null }, retryable: false }, T0);
    expect(historyEntry(claimed, final, asAgent)).toMatchObject({ kind: 'FAILED', to: 'FAILED', message: 'broken' });
  });

  it('names the clock that ran out for the lease sweeper', () => {
    const claimed = claim(task({ timeoutSeconds: 30 }), AGENT, 60, T0);
    const at = T0 + 31_000;
    const timedOut = expire(claimed, at)!;
    expect(historyEntry(claimed, timedOut, SYSTEM_ACTORS.leaseSweeper, expiryNote(claimed, at))).toMatchObject({
      kind: 'TIMED_OUT',
      actor: 'system:lease-sweeper',
      onBehalfOf: null,
    });
    const leased = claim(task(), AGENT, 10, T0);
    expect(expiryNote(leased, T0 + 11_000).kind).toBe('LEASE_EXPIRED');
  });
});
