// The route declarations: how annotated operations are read, and the mistakes an author gets told
// about (with file, line and operation) instead of a route that silently misbehaves.
import { describe, expect, it } from 'vitest';
import { loadOperations, OperationFileError, parseOperationFiles } from '../../gateway/rest/operations.ts';

function problemsOf(text: string): string {
  try {
    parseOperationFiles([{ name: 'things.graphql', text }]);
  } catch (err) {
    expect(err).toBeInstanceOf(OperationFileError);
    return (err as Error).message;
  }
  throw new Error('expected the operations to be refused');
}

describe('reading operation files', () => {
  it('reads the annotations above each operation, the tag from the file, and the used fragments', () => {
    const { routes, tags } = parseOperationFiles([
      {
        name: 'things.graphql',
        text: `# Things: what this tag is about.

fragment Thing on Agent { id name }
fragment Unused on Agent { id }

# @route POST /v1/things/{id}/poke
# @status 202
# @query expectedVersion
# @summary Poke a thing
# Pokes it gently.
# Twice if needed.
# @example {"force": 2}
mutation PokeThing($id: ID!, $expectedVersion: Int, $force: Int) {
  activateAgent(id: $id, expectedVersion: $expectedVersion) { ...Thing }
}`,
      },
    ]);
    expect(tags).toEqual([{ name: 'things', description: 'Things: what this tag is about.' }]);
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatchObject({
      operationId: 'PokeThing',
      method: 'POST',
      path: '/v1/things/{id}/poke',
      pathParams: ['id'],
      status: 202,
      nullStatus: 404,
      queryVariables: ['expectedVersion'],
      tag: 'things',
      summary: 'Poke a thing',
      description: 'Pokes it gently. Twice if needed.',
      example: { force: 2 },
    });
    // The executed document carries exactly the fragments the operation spreads.
    expect(routes[0]?.document).toContain('fragment Thing on Agent');
    expect(routes[0]?.document).not.toContain('Unused');
  });

  it('refuses an operation without a route, or with a malformed one', () => {
    expect(problemsOf('query GetThing { agent(id: "x") { id } }')).toContain('things.graphql:1 (GetThing): needs a "# @route <METHOD> /path" comment');
    expect(problemsOf('# @route FETCH /v1/x\nquery A { agent(id: "x") { id } }')).toContain(
      '@route must be "<GET|POST|PUT|PATCH|DELETE> /path", got "FETCH /v1/x"',
    );
    expect(problemsOf('# @route GET /v1/Things_\nquery A { agent(id: "x") { id } }')).toContain('path "/v1/Things_" must be');
  });

  it('refuses placeholders and @query names that are not variables', () => {
    const message = problemsOf('# @route POST /v1/x/{thing}\n# @query version\nmutation A($id: ID!) { activateAgent(id: $id) { id } }');
    expect(message).toContain('path placeholder {thing} is not a variable of the operation');
    expect(message).toContain('@query version is not a variable of the operation');
  });

  it('refuses GET mutations, non-GET queries, several root fields, anonymous operations and subscriptions', () => {
    expect(problemsOf('# @route GET /v1/x/{id}\nmutation A($id: ID!) { activateAgent(id: $id) { id } }')).toContain('GET routes must be queries');
    expect(problemsOf('# @route POST /v1/x\nquery A { agents { totalCount } }')).toContain('queries are served with GET');
    expect(problemsOf('# @route GET /v1/x\nquery A { agents { totalCount } tasks { totalCount } }')).toContain('select exactly one root field');
    expect(problemsOf('# @route GET /v1/x\n{ agents { totalCount } }')).toContain('every operation needs a name');
    expect(problemsOf('# @route GET /v1/x\nsubscription A { agents }')).toContain('subscriptions have no REST route');
  });

  it('refuses two routes that would match the same requests, and duplicate names', () => {
    const message = problemsOf(`# @route GET /v1/x/{id}
query A($id: ID!) { agent(id: $id) { id } }
# @route GET /v1/x/{key}
query B($key: ID!) { agent(id: $key) { id } }
# @route GET /v1/y
query A { agents { totalCount } }`);
    expect(message).toContain('GET /v1/x/{key} is already the route of A');
    expect(message).toContain('operation name already used');
  });

  it('refuses unknown annotations, bad statuses and examples that are not JSON', () => {
    const message = problemsOf('# @route POST /v1/x\n# @status 204\n# @colour red\n# @example {nope}\nmutation A($id: ID!) { activateAgent(id: $id) { id } }');
    expect(message).toContain('@status must be 200, 201 or 202, got "204"');
    expect(message).toContain('unknown annotation @colour');
    expect(message).toContain('@example is not JSON');
  });

  it('reads the repository operations without problems, one route per operation', () => {
    const { routes, tags } = loadOperations();
    expect(tags.map((t) => t.name)).toEqual(['agents', 'collaboration', 'discovery', 'integrations', 'memory-graph', 'memory', 'tasks', 'workflows']);
    expect(tags.every((t) => t.description)).toBe(true);
    expect(new Set(routes.map((r) => r.operationId)).size).toBe(routes.length);
    // Every read and write of the agents and orchestration domains (issue 4's list).
    const expected = [
      'ListAgents',
      'GetAgent',
      'RegisterAgent',
      'RegisterAgentFromCard',
      'UpdateAgent',
      'ActivateAgent',
      'PauseAgent',
      'ResumeAgent',
      'RetireAgent',
      'RecordHeartbeat',
      'ListTasks',
      'GetTask',
      'SubmitTask',
      'ClaimTask',
      'ReportTaskProgress',
      'RequestTaskInput',
      'ProvideTaskInput',
      'CompleteTask',
      'FailTask',
      'CancelTask',
      'ListWorkflowDefinitions',
      'GetWorkflowDefinition',
      'CreateWorkflowDefinition',
      'ListWorkflowRuns',
      'GetWorkflowRun',
      'StartWorkflowRun',
      'CancelWorkflowRun',
    ];
    expect(routes.map((r) => r.operationId)).toEqual(expect.arrayContaining(expected));
  });
});
