// Idempotent create mutations through the gateway (Idempotency-Key, runtime/idempotency.ts), over
// GraphQL POST and REST: a retry with the same key answers the first result and creates nothing,
// the key reused for another request is refused, malformed keys and one key on two mutation fields
// are 400. And the ghost write: orchestration commits a task and answers late (a hold after the
// commit, honoured only with NODE_ENV=test), a gateway with a short SUBGRAPH_TIMEOUT_MS answers
// SUBGRAPH_UNAVAILABLE, and the client's retry with the same key gets that task: exactly one exists.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAuthorization } from '../support/auth.ts';
import { gql, manageProcesses, startGatewayProcess, startPlatform, subgraphsOf, type Platform, type ServiceProcess } from '../support/processes.ts';

manageProcesses();

const SUBMIT = `mutation ($input: SubmitTaskInput!) { submitTask(input: $input) { id title } }`;
const COUNT = `query ($tag: String) { tasks(filter: { skillTag: $tag }) { totalCount } }`;
/** How long orchestration holds a fresh keyed create after its commit; the impatient gateway's deadline is far shorter. */
const HOLD_MS = 2000;

interface Submitted {
  submitTask: { id: string; title: string } | null;
}

describe('Idempotency-Key on create mutations', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'e2e-idempotency-'));
  let platform: Platform;
  let impatient: ServiceProcess;

  beforeAll(async () => {
    platform = await startPlatform({ dataDir, env: { NODE_ENV: 'test', TEST_HOLD_AFTER_IDEMPOTENT_COMMIT_MS: String(HOLD_MS) } });
    // The same subgraphs behind a gateway that gives up on a subgraph long before the hold ends.
    impatient = await startGatewayProcess({ name: 'gateway-impatient', subgraphs: subgraphsOf(platform), env: { SUBGRAPH_TIMEOUT_MS: '200' } });
  }, 120_000);
  afterAll(async () => {
    await impatient?.stop();
    await platform?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const tag = () => `idem-${randomBytes(4).toString('hex')}`;
  const count = async (skillTag: string) => {
    const result = await gql<{ tasks: { totalCount: number } }>(platform.url, COUNT, { tag: skillTag });
    return result.data?.tasks.totalCount;
  };
  const submit = (url: string, input: Record<string, unknown>, key?: string) =>
    gql<Submitted>(url, SUBMIT, { input }, key === undefined ? {} : { 'idempotency-key': key });

  const rest = async (path: string, body: unknown, key?: string) => {
    const res = await fetch(new URL(path, platform.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: await defaultAuthorization(), ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: JSON.stringify(body),
    });
    return { status: res.status, contentType: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
  };

  it('GraphQL: a retry with the same key answers the same task and creates nothing', async () => {
    const skill = tag();
    const key = randomUUID();
    const input = { title: 'once', requiredSkillTags: [skill] };
    const first = await submit(platform.url, input, key);
    const again = await submit(platform.url, input, key);
    expect(first.errors).toBeUndefined();
    expect(again.errors).toBeUndefined();
    expect(again.data?.submitTask?.id).toBe(first.data?.submitTask?.id);
    expect(await count(skill)).toBe(1);
    // Without a key, the same request creates again.
    await submit(platform.url, input);
    expect(await count(skill)).toBe(2);
  });

  it('GraphQL: the key reused for another request is IDEMPOTENCY_KEY_REUSED, and nothing is created', async () => {
    const skill = tag();
    const key = randomUUID();
    await submit(platform.url, { title: 'first', requiredSkillTags: [skill] }, key);
    const reused = await submit(platform.url, { title: 'second', requiredSkillTags: [skill] }, key);
    expect(reused.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count(skill)).toBe(1);
  });

  it('keys are the caller’s: another tenant’s same key creates its own task', async () => {
    const skill = tag();
    const key = randomUUID();
    const input = { title: 'mine', requiredSkillTags: [skill] };
    const mine = await submit(platform.url, input, key);
    const { userToken } = await import('../support/auth.ts');
    const other = await gql<Submitted>(
      platform.url,
      SUBMIT,
      { input },
      { authorization: `Bearer ${await userToken({ tenant: 'other-tenant' })}`, 'idempotency-key': key },
    );
    expect(other.errors).toBeUndefined();
    expect(other.data?.submitTask?.id).not.toBe(mine.data?.submitTask?.id);
  });

  it('REST: a retry answers 201 with the same task; another body under the key is 422 /problems/idempotency-key-reused', async () => {
    const skill = tag();
    const key = randomUUID();
    const body = { title: 'rest once', requiredSkillTags: [skill] };
    const first = await rest('/v1/tasks', body, key);
    const again = await rest('/v1/tasks', body, key);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(await count(skill)).toBe(1);

    const reused = await rest('/v1/tasks', { ...body, title: 'rest other' }, key);
    expect(reused.status).toBe(422);
    expect(reused.contentType).toContain('application/problem+json');
    expect(reused.body.type).toBe('/problems/idempotency-key-reused');
    expect(reused.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count(skill)).toBe(1);
  });

  it('refuses a malformed key with 400 BAD_USER_INPUT naming the header, over GraphQL and REST', async () => {
    const skill = tag();
    for (const key of ['', 'x'.repeat(256), 'tab\there', 'naïve']) {
      // A raw request: the test helper leaves out headers given as ''.
      const res = await fetch(platform.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: await defaultAuthorization(), 'idempotency-key': key },
        body: JSON.stringify({ query: SUBMIT, variables: { input: { title: 'bad key', requiredSkillTags: [skill] } } }),
      });
      const body = (await res.json()) as { errors?: { message: string; extensions?: { code?: string } }[] };
      expect(res.status, `key ${JSON.stringify(key)}`).toBe(400);
      expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(body.errors?.[0]?.message).toContain('Idempotency-Key');
    }
    const viaRest = await rest('/v1/tasks', { title: 'bad key', requiredSkillTags: [skill] }, 'x'.repeat(256));
    expect(viaRest.status).toBe(400);
    expect(viaRest.body.code).toBe('BAD_USER_INPUT');
    expect(String(viaRest.body.detail)).toContain('Idempotency-Key');
    expect(await count(skill)).toBe(0);
  });

  it('refuses one key on a document with two mutation fields, before either runs', async () => {
    const skill = tag();
    const result = await gql(
      platform.url,
      `mutation ($a: SubmitTaskInput!, $b: SubmitTaskInput!) { a: submitTask(input: $a) { id } b: submitTask(input: $b) { id } }`,
      { a: { title: 'a', requiredSkillTags: [skill] }, b: { title: 'b', requiredSkillTags: [skill] } },
      { 'idempotency-key': randomUUID() },
    );
    // The first field's refusal ends the (serial) mutation: the second never runs either.
    expect(result.errors?.length).toBeGreaterThan(0);
    for (const error of result.errors ?? []) expect(error.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toContain('Idempotency-Key');
    expect(await count(skill)).toBe(0);
  });

  it('registerAgent (with a credential) and registerAgentFromCard: a retry answers the same agent and registers nothing more', async () => {
    const name = `Idem ${randomBytes(4).toString('hex')}`;
    const key = randomUUID();
    const REGISTER = `mutation ($name: String!) { registerAgent(input: { name: $name, skills: [{ id: "s", name: "S", tags: ["s"] }] }, issueCredential: true) { id credential { keyId secret } } }`;
    type Registered = { registerAgent: { id: string; credential: { keyId: string; secret: string } | null } };
    const first = await gql<Registered>(platform.url, REGISTER, { name }, { 'idempotency-key': key });
    const again = await gql<Registered>(platform.url, REGISTER, { name }, { 'idempotency-key': key });
    expect(first.errors).toBeUndefined();
    expect(again.errors).toBeUndefined();
    expect(again.data?.registerAgent.id).toBe(first.data?.registerAgent.id);
    expect(first.data?.registerAgent.credential?.secret).toMatch(/^ap_/);
    // The secret was shown once; the repeat mints no second credential.
    expect(again.data?.registerAgent.credential).toBeNull();
    const keys = await gql<{ apiKeys: { totalCount: number } }>(platform.url, `query ($a: ID) { apiKeys(agentId: $a, includeRevoked: true) { totalCount } }`, {
      a: first.data?.registerAgent.id,
    });
    expect(keys.data?.apiKeys.totalCount).toBe(1);

    const CARD = `mutation ($card: JSON!) { registerAgentFromCard(card: $card) { id } }`;
    const card = {
      name: `${name} card`,
      description: 'An idempotent card',
      url: 'https://agents.example.com/a2a',
      version: '1.0.0',
      skills: [{ id: 's', name: 'S', description: 'x', tags: ['s'] }],
    };
    const cardKey = randomUUID();
    const fromCard = await gql<{ registerAgentFromCard: { id: string } }>(platform.url, CARD, { card }, { 'idempotency-key': cardKey });
    const fromCardAgain = await gql<{ registerAgentFromCard: { id: string } }>(platform.url, CARD, { card }, { 'idempotency-key': cardKey });
    expect(fromCard.errors).toBeUndefined();
    expect(fromCardAgain.data?.registerAgentFromCard.id).toBe(fromCard.data?.registerAgentFromCard.id);
  });

  it('createWorkflowDefinition and startWorkflowRun: a retry answers the same definition and run, and starts nothing more', async () => {
    const skill = tag();
    const DEFINE = `mutation ($input: CreateWorkflowDefinitionInput!) { createWorkflowDefinition(input: $input) { id version } }`;
    const START = `mutation ($d: ID!) { startWorkflowRun(definitionId: $d) { id } }`;
    const input = { name: `flow-${skill}`, steps: [{ id: 'one', title: 'one', requiredSkillTags: [skill] }] };
    const defineKey = randomUUID();
    type Defined = { createWorkflowDefinition: { id: string; version: number } };
    const defined = await gql<Defined>(platform.url, DEFINE, { input }, { 'idempotency-key': defineKey });
    const definedAgain = await gql<Defined>(platform.url, DEFINE, { input }, { 'idempotency-key': defineKey });
    expect(defined.errors).toBeUndefined();
    expect(definedAgain.data?.createWorkflowDefinition).toEqual(defined.data?.createWorkflowDefinition);
    const definitionId = defined.data?.createWorkflowDefinition.id;

    const runKey = randomUUID();
    const run = await gql<{ startWorkflowRun: { id: string } }>(platform.url, START, { d: definitionId }, { 'idempotency-key': runKey });
    const runAgain = await gql<{ startWorkflowRun: { id: string } }>(platform.url, START, { d: definitionId }, { 'idempotency-key': runKey });
    expect(run.errors).toBeUndefined();
    expect(runAgain.data?.startWorkflowRun.id).toBe(run.data?.startWorkflowRun.id);
    // One run, so one task for its one step.
    expect(await count(skill)).toBe(1);
  });

  it('createApiKey: a retry creates no second key and names the first (its secret is never stored)', async () => {
    const CREATE = `mutation ($name: String!) { createApiKey(input: { name: $name, scopes: ["tasks:read"] }) { apiKey { id } secret } }`;
    const COUNT_KEYS = `{ apiKeys(first: 100, includeRevoked: true) { totalCount } }`;
    const before = (await gql<{ apiKeys: { totalCount: number } }>(platform.url, COUNT_KEYS)).data?.apiKeys.totalCount ?? -1;
    const key = randomUUID();
    const first = await gql<{ createApiKey: { apiKey: { id: string }; secret: string } }>(
      platform.url,
      CREATE,
      { name: 'idem key' },
      { 'idempotency-key': key },
    );
    const again = await gql(platform.url, CREATE, { name: 'idem key' }, { 'idempotency-key': key });
    expect(first.errors).toBeUndefined();
    expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(again.errors?.[0]?.extensions?.apiKeyId).toBe(first.data?.createApiKey.apiKey.id);
    expect(JSON.stringify(again)).not.toContain(first.data?.createApiKey.secret ?? 'no secret');
    const after = (await gql<{ apiKeys: { totalCount: number } }>(platform.url, COUNT_KEYS)).data?.apiKeys.totalCount;
    expect(after).toBe(before + 1);
    const reused = await gql(platform.url, CREATE, { name: 'another key' }, { 'idempotency-key': key });
    expect(reused.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('ghost write: the subgraph commits, the gateway times out, the retry with the same key answers that task and only it exists', async () => {
    const skill = tag();
    const key = randomUUID();
    const input = { title: 'ghost', requiredSkillTags: [skill] };
    const timedOut = await submit(impatient.url, input, key);
    expect(timedOut.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE');
    // The task was committed before the subgraph went quiet.
    expect(await count(skill)).toBe(1);

    const retried = await submit(impatient.url, input, key);
    expect(retried.errors).toBeUndefined();
    expect(retried.data?.submitTask?.title).toBe('ghost');
    expect(await count(skill)).toBe(1);
    const listed = await gql<{ tasks: { nodes: { id: string }[] } }>(
      platform.url,
      `query ($tag: String) { tasks(filter: { skillTag: $tag }) { nodes { id } } }`,
      {
        tag: skill,
      },
    );
    expect(listed.data?.tasks.nodes.map((n) => n.id)).toEqual([retried.data?.submitTask?.id]);
  });
});
