// Consumer-driven contract of the TypeScript client's REST side (clients/typescript, openapi-fetch
// over the OpenAPI document's types) with the gateway's REST facade: what it sends, and what of
// the answers it relies on. Pact's mock server stands in for the gateway here;
// gateway.provider.test.ts replays the same interactions against the real platform.
import { MatchersV3, PactV4 } from '@pact-foundation/pact';
import { afterAll, describe, expect, it } from 'vitest';
import { createPlatformClient } from '../../clients/typescript/index.ts';
import { checkPact, EXAMPLE_AGENT_ID, EXAMPLE_TASK_ID, pactOutputDir, PROVIDER } from './support.ts';

const { like, eachLike, integer, string, regex, uuid, fromProviderState, boolean } = MatchersV3;
const CONSUMER = 'typescript-client';
const dir = pactOutputDir();
const pact = new PactV4({ consumer: CONSUMER, provider: PROVIDER, dir, logLevel: 'warn' });
const TOKEN = 'example-token';
const authorization = regex(/^Bearer \S+$/, `Bearer ${TOKEN}`);
const json = regex(/^application\/json(;.*)?$/, 'application/json; charset=utf-8');
const problemJson = regex(/^application\/problem\+json(;.*)?$/, 'application/problem+json; charset=utf-8');

const client = (url: string) => createPlatformClient({ url, token: TOKEN });

describe('TypeScript client → REST facade', () => {
  it('lists agents', () =>
    pact
      .addInteraction()
      .given('an active agent exists')
      .uponReceiving('a request for the first page of agents')
      .withRequest('GET', '/v1/agents', (b) => b.query({ first: '5' }).headers({ authorization }))
      .willRespondWith(200, (b) =>
        b.headers({ 'Content-Type': json }).jsonBody({
          totalCount: integer(1),
          nodes: eachLike({
            id: uuid(EXAMPLE_AGENT_ID),
            name: string('Summarizer'),
            status: string('ACTIVE'),
            skills: eachLike({ id: string('sum'), tags: eachLike('summarize') }),
          }),
          pageInfo: { hasNextPage: boolean(false) },
        }),
      )
      .executeTest(async (mock) => {
        const { data, response } = await client(mock.url).rest.GET('/v1/agents', { params: { query: { first: 5 } } });
        expect(response.status).toBe(200);
        expect(data?.nodes[0]?.name).toBe('Summarizer');
        expect(data?.pageInfo.hasNextPage).toBe(false);
      }));

  it('submits a task', () =>
    pact
      .addInteraction()
      .given('an active agent exists')
      .uponReceiving('a task submission')
      .withRequest('POST', '/v1/tasks', (b) =>
        b.headers({ authorization, 'Content-Type': json }).jsonBody({ title: 'Summarise the Q3 report', requiredSkillTags: ['summarize'], priority: 5 }),
      )
      .willRespondWith(201, (b) =>
        b
          .headers({ 'Content-Type': json, location: regex(/^\/v1\/tasks\/[0-9a-f-]{36}$/, `/v1/tasks/${EXAMPLE_TASK_ID}`) })
          .jsonBody({ id: uuid(EXAMPLE_TASK_ID), title: 'Summarise the Q3 report', state: 'SUBMITTED', priority: 5, attempts: integer(0) }),
      )
      .executeTest(async (mock) => {
        const { data, response } = await client(mock.url).rest.POST('/v1/tasks', {
          body: { title: 'Summarise the Q3 report', requiredSkillTags: ['summarize'], priority: 5 },
        });
        expect(response.status).toBe(201);
        expect(response.headers.get('location')).toBe(`/v1/tasks/${data?.id}`);
        expect(data?.state).toBe('SUBMITTED');
      }));

  it('reads a task', () =>
    pact
      .addInteraction()
      .given('a queued task exists')
      .uponReceiving('a request for one task')
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Pact's provider-state expression, filled in by the provider
      .withRequest('GET', fromProviderState('/v1/tasks/${taskId}', `/v1/tasks/${EXAMPLE_TASK_ID}`), (b) => b.headers({ authorization }))
      .willRespondWith(200, (b) =>
        b.headers({ 'Content-Type': json }).jsonBody({
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Pact's provider-state expression, filled in by the provider
          id: fromProviderState('${taskId}', EXAMPLE_TASK_ID),
          title: string('Translate the release notes'),
          state: 'SUBMITTED',
          requiredSkillTags: eachLike('translation'),
          createdAt: regex(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/, '2026-12-03T10:00:00.000Z'),
        }),
      )
      .executeTest(async (mock) => {
        const { data, response } = await client(mock.url).rest.GET('/v1/tasks/{id}', { params: { path: { id: EXAMPLE_TASK_ID } } });
        expect(response.status).toBe(200);
        expect(data?.id).toBe(EXAMPLE_TASK_ID);
      }));

  it('gets a problem for a task that does not exist', () =>
    pact
      .addInteraction()
      .given('an active agent exists')
      .uponReceiving('a request for a task that does not exist')
      .withRequest('GET', '/v1/tasks/00000000-0000-4000-8000-000000000000', (b) => b.headers({ authorization }))
      .willRespondWith(404, (b) =>
        b.headers({ 'Content-Type': problemJson }).jsonBody({ status: 404, code: 'NOT_FOUND', title: like('Not Found'), detail: string('No task') }),
      )
      .executeTest(async (mock) => {
        const { error, response } = await client(mock.url).rest.GET('/v1/tasks/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } });
        expect(response.status).toBe(404);
        expect((error as { code?: string } | undefined)?.code).toBe('NOT_FOUND');
      }));
});

afterAll(() => {
  const { written, checkedIn, file } = checkPact(dir, CONSUMER);
  // A changed expectation is a changed contract: rerun with PACT_UPDATE=1 and commit the file.
  expect(written, `${file} is stale: run PACT_UPDATE=1 npx vitest run tests/pact and commit it`).toEqual(checkedIn);
});
