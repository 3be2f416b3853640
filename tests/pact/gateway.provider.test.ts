// The gateway as the provider of the consumers' contracts (pacts/): every interaction of every
// pact is replayed against the real platform (subgraphs and gateway, each its own process), after
// its provider state is set up through the platform's own API, never by writing to its databases.
// Each state names the credential the interaction's request then carries (requestFilter): the
// tenant's admin for the REST client, the agent of the state for the worker.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Verifier } from '@pact-foundation/pact';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_SCOPES } from '../../runtime/identity.ts';
import { defaultAuthorization, userToken } from '../support/auth.ts';
import { gqlOk, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';
import { PACTS_DIR, PROVIDER } from './support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
/** The authorization the next replayed request carries: set by its provider state. */
let authorization = '';

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pact-provider-'));
  platform = await startPlatform({ dataDir });
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function newAgent(skillTag: string): Promise<{ id: string; authorization: string }> {
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    'mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }',
    { input: { name: 'Summarizer', skills: [{ id: 'sum', name: 'Summaries', tags: [skillTag] }] } },
  );
  await gqlOk(platform.url, 'mutation($id: ID!) { activateAgent(id: $id) { id } }', { id: registerAgent.id });
  return {
    id: registerAgent.id,
    authorization: `Bearer ${await userToken({ subject: `agent:${registerAgent.id}`, agentId: registerAgent.id, scopes: AGENT_SCOPES })}`,
  };
}

/** Claims every queued task with the tag (as a helper agent), so the next claim sees only what a state adds. */
async function drain(skillTag: string): Promise<void> {
  const helper = await newAgent(skillTag);
  for (;;) {
    const { claimTask } = await gqlOk<{ claimTask: { id: string } | null }>(
      platform.url,
      'mutation($a: ID!, $t: [String!]) { claimTask(agentId: $a, skillTags: $t) { id } }',
      { a: helper.id, t: [skillTag] },
    );
    if (!claimTask) return;
  }
}

async function submit(title: string, skillTag: string): Promise<string> {
  const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(platform.url, 'mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }', {
    input: { title, requiredSkillTags: [skillTag] },
  });
  return submitTask.id;
}

const stateHandlers = {
  'an active agent exists': async () => {
    await newAgent('summarize');
    authorization = await defaultAuthorization();
    return undefined;
  },
  'a queued task exists': async () => {
    const taskId = await submit('Translate the release notes', 'translation');
    authorization = await defaultAuthorization();
    return { taskId };
  },
  'an agent with a queued task for its skill': async () => {
    await drain('summarize');
    const agent = await newAgent('summarize');
    await submit('Summarise the report', 'summarize');
    authorization = agent.authorization;
    return undefined;
  },
  'an agent with an empty queue': async () => {
    await drain('summarize');
    authorization = (await newAgent('summarize')).authorization;
    return undefined;
  },
  'an agent holding a task': async () => {
    await drain('summarize');
    const agent = await newAgent('summarize');
    const taskId = await submit('Summarise the report', 'summarize');
    const { claimTask } = await gqlOk<{ claimTask: { id: string } | null }>(
      platform.url,
      'mutation($a: ID!) { claimTask(agentId: $a, skillTags: ["summarize"]) { id } }',
      { a: agent.id },
    );
    expect(claimTask?.id).toBe(taskId);
    authorization = agent.authorization;
    return { taskId };
  },
};

// The pacts carry example credentials; the real ones come from the provider state.
// (Typed here: Pact types it with express, whose types this project does not install.)
const requestFilter = (req: { headers: Record<string, string | string[] | undefined> }, _res: unknown, next: () => void): void => {
  req.headers.authorization = authorization;
  next();
};

describe(`${PROVIDER} honours its consumers' pacts`, () => {
  it('verifies every interaction of every pact in pacts/', async () => {
    const pactUrls = readdirSync(PACTS_DIR)
      .filter((f) => f.endsWith(`-${PROVIDER}.json`))
      .map((f) => join(PACTS_DIR, f));
    expect(pactUrls.length).toBeGreaterThanOrEqual(2);
    const output = await new Verifier({
      provider: PROVIDER,
      providerBaseUrl: platform.url.replace(/\/graphql$/, ''),
      pactUrls,
      stateHandlers,
      requestFilter,
      logLevel: 'warn',
    }).verifyProvider();
    expect(output).toBeTruthy();
  });
});
