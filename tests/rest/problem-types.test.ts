// Each refusal code of the REST facade maps to one status and, for the codes that need telling
// apart, one problem type; everything else stays about:blank.
import { describe, expect, it } from 'vitest';
import { statusOf } from '../../gateway/rest/graphql-errors.ts';
import { problem, problemType, TYPED_PROBLEMS } from '../../gateway/rest/problem.ts';

const where = { instance: '/v1/tasks/claim', requestId: 'r1' };

describe('problem types', () => {
  it.each([
    ['AGENT_REQUIRED', 400, '/problems/agent-required'],
    ['AGENT_MISMATCH', 403, '/problems/agent-mismatch'],
    ['DELEGATION_FORBIDDEN', 403, '/problems/delegation-forbidden'],
    ['AGENT_NOT_FOUND', 404, '/problems/agent-not-found'],
    ['AGENT_NOT_ACTIVE', 409, '/problems/agent-not-active'],
    ['SKILLS_NOT_REGISTERED', 422, '/problems/skills-not-registered'],
    ['DEPENDENCY_UNAVAILABLE', 503, '/problems/dependency-unavailable'],
  ])('%s is %i with type %s and its own title', (code, status, type) => {
    expect(statusOf(code)).toBe(status);
    expect(problemType(code)).toBe(type);
    expect(problem(status, code, 'why', where)).toMatchObject({ type, status, code, title: TYPED_PROBLEMS[code as keyof typeof TYPED_PROBLEMS].title });
  });

  it('keeps about:blank and the reason phrase for every other code', () => {
    expect(problem(409, 'CONFLICT', 'why', where)).toMatchObject({ type: 'about:blank', title: 'Conflict' });
    expect(problem(404, 'NOT_FOUND', 'why', where)).toMatchObject({ type: 'about:blank', title: 'Not Found' });
    // Codes come from any subgraph: an inherited property name is not a typed code.
    expect(problemType('toString')).toBe('about:blank');
  });
});
