// Consumer-driven contract of the agent worker (examples/agent-worker): the GraphQL operations it
// sends with an agent's credential (claim, then complete), through the same client it uses, and
// what of the answers it relies on. gateway.provider.test.ts replays them against the real platform.
import { MatchersV3, PactV4 } from '@pact-foundation/pact';
import { print } from 'graphql';
import { afterAll, describe, expect, it } from 'vitest';
import { ClaimTaskDocument, CompleteTaskDocument, createPlatformClient } from '../../clients/typescript/index.ts';
import { checkPact, EXAMPLE_AGENT_ID, EXAMPLE_TASK_ID, pactOutputDir, PROVIDER } from './support.ts';

const { regex, string, uuid, fromProviderState, nullValue } = MatchersV3;
const CONSUMER = 'agent-worker';
const dir = pactOutputDir();
const pact = new PactV4({ consumer: CONSUMER, provider: PROVIDER, dir, logLevel: 'warn' });
const TOKEN = 'agent-token';
const authorization = regex(/^Bearer \S+$/, `Bearer ${TOKEN}`);
const json = regex(/^application\/(graphql-response\+)?json(;.*)?$/, 'application/json; charset=utf-8');
const worker = (url: string) => createPlatformClient({ url, token: TOKEN });

describe('agent worker → gateway (GraphQL)', () => {
  it('claims the next task for its skill', () =>
    pact
      .addGraphQLInteraction()
      .given('an agent with a queued task for its skill')
      .uponReceiving('a claim for the next task')
      .withOperation('ClaimTask')
      .withVariables({ skillTags: ['summarize'], leaseSeconds: 30 })
      .withRequest('POST', '/graphql', (b) => b.headers({ authorization }))
      .withMutation(print(ClaimTaskDocument))
      .willRespondWith(200, (b) =>
        b.headers({ 'Content-Type': json }).jsonBody({
          data: { claimTask: { id: uuid(EXAMPLE_TASK_ID), state: 'ASSIGNED', title: string('Summarise the report'), agent: { id: uuid(EXAMPLE_AGENT_ID) } } },
        }),
      )
      .executeTest(async (mock) => {
        const { claimTask } = await worker(mock.url).request(ClaimTaskDocument, { skillTags: ['summarize'], leaseSeconds: 30 });
        expect(claimTask?.state).toBe('ASSIGNED');
      }));

  it('gets null when nothing is claimable', () =>
    pact
      .addGraphQLInteraction()
      .given('an agent with an empty queue')
      .uponReceiving('a claim when nothing is queued for its skill')
      .withOperation('ClaimTask')
      .withVariables({ skillTags: ['summarize'], leaseSeconds: 30 })
      .withRequest('POST', '/graphql', (b) => b.headers({ authorization }))
      .withMutation(print(ClaimTaskDocument))
      .willRespondWith(200, (b) => b.headers({ 'Content-Type': json }).jsonBody({ data: { claimTask: nullValue() } }))
      .executeTest(async (mock) => {
        const { claimTask } = await worker(mock.url).request(ClaimTaskDocument, { skillTags: ['summarize'], leaseSeconds: 30 });
        expect(claimTask).toBeNull();
      }));

  it('completes the task it holds', () =>
    pact
      .addGraphQLInteraction()
      .given('an agent holding a task')
      .uponReceiving('the completion of the task it holds')
      .withOperation('CompleteTask')
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Pact's provider-state expression, filled in by the provider
      .withVariables({ id: fromProviderState('${taskId}', EXAMPLE_TASK_ID), result: { summary: 'done' } })
      .withRequest('POST', '/graphql', (b) => b.headers({ authorization }))
      .withMutation(print(CompleteTaskDocument))
      .willRespondWith(200, (b) =>
        b
          .headers({ 'Content-Type': json })
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Pact's provider-state expression, filled in by the provider
          .jsonBody({ data: { completeTask: { id: fromProviderState('${taskId}', EXAMPLE_TASK_ID), state: 'COMPLETED', result: { summary: 'done' } } } }),
      )
      .executeTest(async (mock) => {
        const { completeTask } = await worker(mock.url).request(CompleteTaskDocument, { id: EXAMPLE_TASK_ID, result: { summary: 'done' } });
        expect(completeTask?.state).toBe('COMPLETED');
      }));
});

afterAll(() => {
  const { written, checkedIn, file } = checkPact(dir, CONSUMER);
  expect(written, `${file} is stale: run PACT_UPDATE=1 npx vitest run tests/pact and commit it`).toEqual(checkedIn);
});
