// Demo data for a first start, written through the gateway with the same mutations a client
// would use, so the seed exercises the real API and never drifts from it. The agents are
// registered with their own credentials and do their tasks' work with them, as real agents would.

/** The agent `npm start`'s example acts as: it has an unclaimed task matching its skills. */
export const EXAMPLE_AGENT = { name: 'Code Reviewer', skillTags: ['review'] } as const;

export interface DemoAgent {
  id: string;
  name: string;
  /** Its agent credential (X-API-Key), known only to the start that registered it. */
  apiKey: string | null;
}

export interface SeedResult {
  seeded: boolean;
  agents: number;
  tasks: number;
  workflowRuns: number;
  memories: number;
  /** EXAMPLE_AGENT, when present. */
  exampleAgent: DemoAgent | null;
}

type Vars = Record<string, unknown>;

/** The gateway, and who the seed acts as there (its credential headers). */
interface Api {
  url: string;
  headers: Record<string, string>;
}

async function call<T>(api: Api, query: string, variables: Vars = {}): Promise<T> {
  const res = await fetch(api.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'seed', ...api.headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length || !body.data) {
    throw new Error(`seed request failed: ${body.errors?.map((e) => e.message).join('; ') ?? res.status}`);
  }
  return body.data;
}

type Registered = { id: string; credential: { secret: string } | null };
const REGISTER = `mutation ($input: RegisterAgentInput!) { registerAgent(input: $input, issueCredential: true) { id credential { secret } } }`;
const REGISTER_CARD = `mutation ($card: JSON!, $labels: [LabelInput!]) { registerAgentFromCard(card: $card, labels: $labels, issueCredential: true) { id credential { secret } } }`;
const SUBMIT = `mutation ($input: SubmitTaskInput!) { submitTask(input: $input) { id } }`;
const CLAIM = `mutation ($agentId: ID!, $tags: [String!]!) { claimTask(agentId: $agentId, skillTags: $tags, leaseSeconds: 3600) { id } }`;

const skill = (id: string, name: string, tags: string[], description: string) => ({ id, name, tags, description });

/** EXAMPLE_AGENT of earlier demo data (its key was shown by the start that seeded it), or null. */
export async function findExampleAgent(gatewayUrl: string, token: string): Promise<DemoAgent | null> {
  const found = await call<{ agents: { nodes: { id: string; name: string }[] } }>(
    { url: gatewayUrl, headers: { authorization: `Bearer ${token}` } },
    `query ($text: String) { agents(filter: { text: $text, status: ACTIVE }, first: 5) { nodes { id name } } }`,
    { text: EXAMPLE_AGENT.name },
  );
  const agent = found.agents.nodes.find((a) => a.name === EXAMPLE_AGENT.name);
  return agent ? { ...agent, apiKey: null } : null;
}

/** Writes the demo data through the gateway as the holder of `token` (needs agents:* and tasks:* scopes). */
export async function seedDemoData(gatewayUrl: string, token: string): Promise<SeedResult> {
  const api: Api = { url: gatewayUrl, headers: { authorization: `Bearer ${token}` } };
  const existing = await call<{ agents: { totalCount: number } }>(api, `{ agents(first: 1) { totalCount } }`);
  if (existing.agents.totalCount > 0) {
    return {
      seeded: false,
      agents: existing.agents.totalCount,
      tasks: 0,
      workflowRuns: 0,
      memories: 0,
      exampleAgent: await findExampleAgent(gatewayUrl, token),
    };
  }

  // Each agent's own credential: what it works its tasks with.
  const keys = new Map<string, string>();
  const remember = (agent: Registered) => {
    if (agent.credential) keys.set(agent.id, agent.credential.secret);
    return agent.id;
  };
  const as = (agentId: string): Api => ({ url: gatewayUrl, headers: { 'x-api-key': keys.get(agentId) ?? '' } });
  const register = async (input: Vars) => remember((await call<{ registerAgent: Registered }>(api, REGISTER, { input })).registerAgent);
  const transition = (name: string, id: string) => call(api, `mutation ($id: ID!) { ${name}(id: $id) { id } }`, { id });

  const researcher = await register({
    name: 'Research Scout',
    description: 'Finds and summarises sources on a topic.',
    agentVersion: '1.4.0',
    endpointUrl: 'https://agents.example.com/research',
    provider: { organization: 'Example Labs', url: 'https://example.com' },
    skills: [
      skill('web-research', 'Web research', ['research', 'search'], 'Searches the web and collects sources.'),
      skill('summarise', 'Summarise', ['summarize', 'writing'], 'Condenses documents.'),
    ],
    labels: [
      { key: 'team', value: 'content' },
      { key: 'tier', value: 'gold' },
    ],
  });
  const writer = await register({
    name: 'Draft Writer',
    description: 'Writes first drafts from research notes.',
    agentVersion: '2.0.1',
    endpointUrl: 'https://agents.example.com/writer',
    skills: [skill('draft', 'Draft', ['writing'], 'Writes long-form drafts.')],
    labels: [{ key: 'team', value: 'content' }],
  });
  const checker = await register({
    name: 'Fact Checker',
    description: 'Verifies claims against sources.',
    skills: [skill('verify', 'Verify claims', ['fact-check', 'research'], 'Checks each claim.')],
    labels: [{ key: 'team', value: 'quality' }],
  });
  const card = {
    name: 'Code Reviewer',
    description: 'Reviews pull requests for bugs and style (registered from an A2A Agent Card).',
    version: '0.9.0',
    url: 'https://agents.example.com/reviewer/a2a',
    protocolVersion: '0.3.0',
    provider: { organization: 'Example Labs', url: 'https://example.com' },
    capabilities: { streaming: true, pushNotifications: false },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/markdown'],
    skills: [{ id: 'review', name: 'Code review', description: 'Reviews a diff.', tags: ['code', 'review'], examples: ['Review PR #42'] }],
  };
  const reviewer = remember(
    (await call<{ registerAgentFromCard: Registered }>(api, REGISTER_CARD, { card, labels: [{ key: 'team', value: 'platform' }] })).registerAgentFromCard,
  );
  const legacy = await register({
    name: 'Legacy Translator',
    description: 'Old translation agent, kept for history.',
    skills: [skill('translate', 'Translate', ['translation'], 'Translates text.')],
  });

  for (const id of [researcher, writer, checker, reviewer, legacy]) await transition('activateAgent', id);
  await transition('pauseAgent', checker);
  await transition('retireAgent', legacy);
  // Activation is the operator's; heartbeats are the agents' own.
  for (const id of [researcher, writer, reviewer]) await call(as(id), `mutation ($id: ID!) { recordHeartbeat(id: $id) { id } }`, { id });

  const submit = async (input: Vars) => (await call<{ submitTask: { id: string } }>(api, SUBMIT, { input })).submitTask.id;
  // An agent names itself: allowed to an agent credential, which may act only as its agent.
  const claim = async (agentId: string, tags: string[]) =>
    (await call<{ claimTask: { id: string } | null }>(as(agentId), CLAIM, { agentId, tags })).claimTask?.id;

  // Tasks in several states: one of each the lifecycle reaches.
  const done = await submit({
    title: 'Summarise Q3 market report',
    requiredSkillTags: ['summarize'],
    priority: 5,
    input: { url: 'https://example.com/q3.pdf' },
  });
  const doneClaim = await claim(researcher, ['research', 'search', 'summarize', 'writing']);
  if (doneClaim === done) {
    await call(as(researcher), `mutation ($t: ID!, $a: ID!) { completeTask(taskId: $t, agentId: $a, result: { summary: "Revenue up 12%." }) { id } }`, {
      t: done,
      a: researcher,
    });
  }
  const working = await submit({ title: 'Draft launch blog post', requiredSkillTags: ['writing'], priority: 3, input: { topic: 'Agent platform launch' } });
  if ((await claim(writer, ['writing'])) === working) {
    await call(
      as(writer),
      `mutation ($t: ID!, $a: ID!) { reportTaskProgress(taskId: $t, agentId: $a, percent: 40, message: "Outline done", leaseSeconds: 3600) { id } }`,
      { t: working, a: writer },
    );
  }
  const failed = await submit({ title: 'Review PR #41', requiredSkillTags: ['review'], retryPolicy: { maximumAttempts: 1 } });
  if ((await claim(reviewer, ['code', 'review'])) === failed) {
    await call(
      as(reviewer),
      `mutation ($t: ID!, $a: ID!) { failTask(taskId: $t, agentId: $a, error: { message: "Repository not reachable", type: "UPSTREAM" }, retryable: false) { id } }`,
      { t: failed, a: reviewer },
    );
  }
  const canceled = await submit({ title: 'Translate FAQ to French', requiredSkillTags: ['translation'] });
  await call(api, `mutation ($id: ID!) { cancelTask(id: $id) { id } }`, { id: canceled });
  await submit({ title: 'Review PR #42', requiredSkillTags: ['review'], priority: 1 });
  await submit({ title: 'Fact-check press release', requiredSkillTags: ['fact-check'], priority: 2 });

  // One workflow: research, then draft and fact-check in parallel, then publish.
  const def = await call<{ createWorkflowDefinition: { id: string } }>(
    api,
    `mutation ($input: CreateWorkflowDefinitionInput!) { createWorkflowDefinition(input: $input) { id } }`,
    {
      input: {
        name: 'blog-post',
        description: 'Research a topic, draft and fact-check in parallel, then publish.',
        steps: [
          { id: 'research', title: 'Research the topic', requiredSkillTags: ['research'] },
          { id: 'draft', title: 'Write the draft', requiredSkillTags: ['writing'], dependsOn: ['research'] },
          { id: 'fact-check', title: 'Check the facts', requiredSkillTags: ['fact-check'], dependsOn: ['research'] },
          { id: 'publish', title: 'Publish the post', requiredSkillTags: ['writing'], dependsOn: ['draft', 'fact-check'] },
        ],
      },
    },
  );
  await call(api, `mutation ($id: ID!, $input: JSON) { startWorkflowRun(definitionId: $id, input: $input) { id } }`, {
    id: def.createWorkflowDefinition.id,
    input: { topic: 'Federated GraphQL for agent platforms' },
  });

  // Memories without vectors: the first vector stored fixes the tenant's dimension, and that is
  // the user's embedding model's to choose, not the demo's.
  await call(api, `mutation ($inputs: [RememberInput!]!) { rememberBatch(inputs: $inputs) { id } }`, {
    inputs: [
      {
        namespace: `agents/${researcher}/notes`,
        kind: 'SEMANTIC',
        text: 'Primary sources beat blog summaries; cite the paper, not the press release.',
        importance: 0.8,
      },
      {
        namespace: `agents/${researcher}/episodes`,
        kind: 'EPISODIC',
        text: 'Researched federated GraphQL: Apollo Federation 2 composes subgraphs into one supergraph.',
        metadata: { topic: 'graphql' },
      },
      {
        namespace: `agents/${writer}/procedures`,
        kind: 'PROCEDURAL',
        text: 'Drafts start with a one-sentence summary, then three sections, then a call to action.',
        importance: 0.7,
      },
      {
        namespace: 'shared/style-guide',
        kind: 'SEMANTIC',
        text: 'Write dates as ISO-8601 and avoid jargon in headlines.',
        metadata: { topic: 'style' },
        importance: 0.9,
      },
    ],
  });

  // Integrations: an endpoint to a local URL, disabled until someone listens there, and a GitHub
  // integration whose pushes submit a task through a trigger.
  await call(api, `mutation ($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }`, {
    input: {
      url: 'http://127.0.0.1:9999/webhooks',
      description: 'Demo: failed tasks (disabled; allow 127.0.0.0/8 in INTEGRATIONS_ALLOWED_NETWORKS, listen there, enable it)',
      eventTypes: ['TaskStateChanged'],
      filter: 'data.to = "FAILED"',
      enabled: false,
    },
  });
  await call(api, `mutation { createInboundIntegration(input: { provider: GITHUB, name: "demo repository" }) { secret } }`);
  await call(api, `mutation ($input: CreateTriggerInput!) { createTrigger(input: $input) { id } }`, {
    input: {
      name: 'Review pushes to main',
      eventType: 'GitHubWebhookReceived',
      filter: 'data.event = "push" and data.body.ref = "refs/heads/main"',
      action: { kind: 'SUBMIT_TASK', config: { title: 'Review {{ data.body.head_commit.id }}', requiredSkillTags: ['review'] } },
    },
  });

  // Discovery: two public agents (their A2A cards at /v1/agents/<id>/card for anyone), one private,
  // and services agents use, alive by heartbeat (they go DOWN after their TTL: nobody beats for them).
  const discover = `mutation ($id: ID!, $input: AgentDiscoveryInput!) { setAgentDiscovery(agentId: $id, input: $input) { version } }`;
  const bearer = { securitySchemes: { bearer: { httpAuthSecurityScheme: { scheme: 'Bearer' } } }, securityRequirements: [{ bearer: [] }] };
  for (const id of [researcher, reviewer]) await call(api, discover, { id, input: { public: true, ...bearer } });
  await call(api, discover, { id: writer, input: { public: false } });
  const service = `mutation ($input: RegisterServiceInput!) { registerService(input: $input) { id } }`;
  await call(api, service, {
    input: { name: 'GitHub MCP server', kind: 'MCP_SERVER', endpoint: 'https://mcp.example.com/github', owner: 'platform', ttlSeconds: 300 },
  });
  await call(api, service, {
    input: { name: 'Embeddings model', kind: 'MODEL_ENDPOINT', endpoint: 'https://models.example.com/v1', owner: 'ml', ttlSeconds: 300 },
  });

  // A conversation on the task being drafted: a person asks, the writer answers with its
  // progress as data, the researcher replies in the thread with its sources as a file reference.
  const channel = (await call<{ openTaskChannel: { id: string } }>(api, `mutation ($t: ID!) { openTaskChannel(taskId: $t) { id } }`, { t: working }))
    .openTaskChannel.id;
  const SEND_MESSAGE = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }`;
  const ask = await call<{ sendMessage: { id: string } }>(api, SEND_MESSAGE, {
    input: {
      channelId: channel,
      clientMessageId: 'seed-1',
      parts: [{ text: 'How is the draft going? Keep it under 800 words.' }],
      mentions: [{ kind: 'AGENT', id: writer }],
    },
  });
  await call(as(writer), SEND_MESSAGE, {
    input: { channelId: channel, clientMessageId: 'seed-2', parts: [{ text: 'Outline done, first draft next.' }, { data: { percent: 40, words: 310 } }] },
  });
  await call(as(researcher), SEND_MESSAGE, {
    input: {
      channelId: channel,
      clientMessageId: 'seed-3',
      replyToId: ask.sendMessage.id,
      parts: [
        { text: 'Sources for the draft:' },
        { file: { uri: 'https://example.com/sources/agent-platforms.pdf', mediaType: 'application/pdf', sizeBytes: 482133 } },
      ],
    },
  });

  // A small knowledge graph: what the research agent learnt, and how the pieces relate.
  const technology = (key: string, name: string) => ({ type: 'Technology', key, name });
  await call(api, `mutation ($inputs: [EntityInput!]!) { upsertEntities(inputs: $inputs) { id } }`, {
    inputs: [technology('apollo-federation', 'Apollo Federation 2'), technology('graphql', 'GraphQL'), technology('supergraph', 'Supergraph')],
  });
  const ref = (key: string) => ({ type: 'Technology', key });
  await call(api, `mutation ($inputs: [RelationInput!]!) { upsertRelations(inputs: $inputs) { id } }`, {
    inputs: [
      { type: 'EXTENDS', source: ref('apollo-federation'), target: ref('graphql') },
      { type: 'COMPOSES', source: ref('apollo-federation'), target: ref('supergraph') },
    ],
  });

  const totals = await call<{
    agents: { totalCount: number };
    tasks: { totalCount: number };
    workflowRuns: { totalCount: number };
    memories: { totalCount: number };
  }>(api, `{ agents(first: 1) { totalCount } tasks(first: 1) { totalCount } workflowRuns(first: 1) { totalCount } memories(first: 1) { totalCount } }`);
  return {
    seeded: true,
    agents: totals.agents.totalCount,
    tasks: totals.tasks.totalCount,
    workflowRuns: totals.workflowRuns.totalCount,
    memories: totals.memories.totalCount,
    exampleAgent: { id: reviewer, name: EXAMPLE_AGENT.name, apiKey: keys.get(reviewer) ?? null },
  };
}
