// The TypeScript client (clients/typescript) against a running platform, as an application would
// use it: typed GraphQL operations, typed REST routes, errors with their codes, an idempotent
// create, and a subscription. Type errors in these calls fail `npm run typecheck` (CI).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  ActivateAgentDocument,
  CancelTaskDocument,
  createPlatformClient,
  GetTaskDocument,
  type PlatformClient,
  PlatformRequestError,
  SubmitTaskDocument,
  type TaskUpdatesSubscription,
  TaskUpdatesDocument,
} from '../../clients/typescript/index.ts';
import { userToken } from '../support/auth.ts';
import { manageProcesses, startPlatform, type Platform } from '../support/processes.ts';
import { subgraphOpenSubscriptions, subgraphSubscribed, waitFor } from '../subscriptions/support.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;
let client: PlatformClient;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-clients-'));
  platform = await startPlatform({ dataDir });
  client = createPlatformClient({ url: platform.url.replace(/\/graphql$/, ''), token: await userToken(), webSocketImpl: WebSocket });
});

afterAll(async () => {
  await client?.dispose();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('TypeScript client', () => {
  it('runs typed GraphQL operations, and an Idempotency-Key makes a retried create answer the first result', async () => {
    const input = { title: 'typed client task', requiredSkillTags: ['typed-client'], input: { n: 1 } };
    const key = randomUUID();
    const first = await client.request(SubmitTaskDocument, { input }, { idempotencyKey: key });
    const retried = await client.request(SubmitTaskDocument, { input }, { idempotencyKey: key });
    expect(first.submitTask.state).toBe('SUBMITTED');
    expect(retried.submitTask.id).toBe(first.submitTask.id);
    const { task } = await client.request(GetTaskDocument, { id: first.submitTask.id });
    expect(task).toMatchObject({ id: first.submitTask.id, title: 'typed client task', input: { n: 1 } });
    // @ts-expect-error: the variables are typed (GetTask needs an id).
    await expect(client.request(GetTaskDocument, {})).rejects.toBeInstanceOf(PlatformRequestError);
  });

  it('rejects with the GraphQL error code', async () => {
    const failure = await client.request(ActivateAgentDocument, { id: randomUUID() }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(PlatformRequestError);
    expect((failure as PlatformRequestError).code).toBe('NOT_FOUND');
  });

  it('calls typed REST routes, with problem+json errors', async () => {
    const created = await client.rest.POST('/v1/tasks', { body: { title: 'over REST', requiredSkillTags: ['typed-client'] } });
    expect(created.response.status).toBe(201);
    const id = created.data?.id ?? '';
    const read = await client.rest.GET('/v1/tasks/{id}', { params: { path: { id } } });
    expect(read.data).toMatchObject({ id, title: 'over REST', state: 'SUBMITTED' });
    const missing = await client.rest.POST('/v1/agents/{id}/activate', { params: { path: { id: randomUUID() } } });
    expect(missing.response.status).toBe(404);
    expect(missing.response.headers.get('content-type')).toContain('application/problem+json');
    expect(missing.error).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });

  it('subscribes over graphql-ws with typed results', async () => {
    const { submitTask } = await client.request(SubmitTaskDocument, { input: { title: 'watched', requiredSkillTags: ['typed-client'] } });
    const received: TaskUpdatesSubscription[] = [];
    const errors: Error[] = [];
    const before = subgraphOpenSubscriptions(platform.orchestration).opened;
    const stop = client.subscribe(TaskUpdatesDocument, { taskId: submitTask.id }, { next: (e) => received.push(e), error: (e) => errors.push(e) });
    await subgraphSubscribed(platform.orchestration, before);
    await client.request(CancelTaskDocument, { id: submitTask.id });
    await waitFor('the cancellation event', () => received.find((e) => e.taskUpdated.to === 'CANCELED'), 20_000);
    stop();
    expect(errors).toEqual([]);
    expect(received.at(-1)?.taskUpdated).toMatchObject({ kind: 'STATE_CHANGED', to: 'CANCELED', task: { id: submitTask.id, state: 'CANCELED' } });
  });
});
