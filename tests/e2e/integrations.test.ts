// The integrations subgraph through the gateway, as partners see it: webhook endpoints receiving
// the platform's events signed per Standard Webhooks (verified by real receivers with the
// `standardwebhooks` package), retries on the schedule with Retry-After honoured, dead letters and
// endpoint auto-disable, secret rotation, replay, SSRF refusal, inbound GitHub/GitLab/Standard
// Webhooks hooks starting tasks through triggers, and no event lost when the integrations process
// is killed mid-delivery. One platform for the file; short retry schedule by configuration.
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityService, IDENTITY_HEADER, loadIdentityConfig } from '../../runtime/identity.ts';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { gqlOk, manageProcesses, startPlatform, withDefaultAuth, type Platform } from '../support/processes.ts';
import { subscribe, waitFor, wsClient } from '../subscriptions/support.ts';
import { startReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

manageProcesses();

const RETRY_SCHEDULE = [300, 600, 1200];

let dataDir: string;
let platform: Platform;
let base: string;
let client: Client;
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-integrations-'));
  platform = await startPlatform({
    dataDir,
    with: ['integrations'],
    env: {
      // The receivers listen on loopback: allowed explicitly, as an operator would for a lab.
      INTEGRATIONS_ALLOWED_NETWORKS: '127.0.0.0/8',
      INTEGRATIONS_RETRY_SCHEDULE_MS: RETRY_SCHEDULE.join(','),
      INTEGRATIONS_DISABLE_AFTER_MS: '0',
      INTEGRATIONS_DELIVERY_TIMEOUT_MS: '3000',
      INTEGRATIONS_POLL_INTERVAL_MS: '100',
    },
  });
  base = platform.url.replace(/\/graphql$/, '');
  client = wsClient(platform.url);
}, 120_000);

afterAll(async () => {
  await client?.dispose();
  for (const r of receivers) await r.close();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function receiver(): Promise<WebhookReceiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

const CREATE_ENDPOINT = `mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url enabled eventTypes secrets { prefix expiresAt } } }
}`;

async function endpoint(r: WebhookReceiver, input: Record<string, unknown>): Promise<string> {
  const { createWebhookEndpoint } = await gqlOk<{ createWebhookEndpoint: { secret: string; endpoint: { id: string } } }>(platform.url, CREATE_ENDPOINT, {
    input: { url: r.url, ...input },
  });
  r.secrets.push(createWebhookEndpoint.secret);
  return createWebhookEndpoint.endpoint.id;
}

async function registerAgent(name: string): Promise<string> {
  const { registerAgent } = await gqlOk<{ registerAgent: { id: string } }>(
    platform.url,
    'mutation($n: String!) { registerAgent(input: { name: $n }) { id } }',
    { n: name },
  );
  return registerAgent.id;
}

interface Delivery {
  id: string;
  status: string;
  attemptCount: number;
  messageId: string;
  attempts: { attempt: number; at: string; statusCode: number | null; error: string | null; responseExcerpt: string | null }[];
}

const DELIVERY = 'query($id: ID!) { webhookDelivery(id: $id) { id status attemptCount messageId attempts { attempt at statusCode error responseExcerpt } } }';

async function delivery(id: string): Promise<Delivery> {
  return (await gqlOk<{ webhookDelivery: Delivery }>(platform.url, DELIVERY, { id })).webhookDelivery;
}

async function sendTest(endpointId: string): Promise<string> {
  const { sendTestEvent } = await gqlOk<{ sendTestEvent: { id: string } }>(platform.url, 'mutation($id: ID!) { sendTestEvent(endpointId: $id) { id } }', {
    id: endpointId,
  });
  return sendTestEvent.id;
}

async function hook(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('outbound webhooks', () => {
  it('lists the event catalog', async () => {
    const { integrationEventTypes } = await gqlOk<{ integrationEventTypes: { name: string; source: string }[] }>(
      platform.url,
      '{ integrationEventTypes { name source } }',
    );
    expect(integrationEventTypes).toContainEqual({ name: 'TaskStateChanged', source: 'orchestration' });
    expect(integrationEventTypes).toContainEqual({ name: 'MemoryRemembered', source: 'memory' });
    expect(integrationEventTypes).toContainEqual({ name: 'GitHubWebhookReceived', source: 'integrations' });
  });

  it('delivers governance’s API key events (through its outbox), never the secret', async () => {
    const r = await receiver();
    const name = `webhook-key-${randomUUID().slice(0, 8)}`;
    await endpoint(r, { eventTypes: ['ApiKeyCreated'], filter: `data.name = "${name}"` });
    const { createApiKey } = await gqlOk<{ createApiKey: { apiKey: { id: string }; secret: string } }>(
      platform.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } secret } }',
      { input: { name, scopes: ['agents:read'] } },
    );
    await waitFor('the key event', () => r.received.length >= 1);
    expect(r.received[0]?.body).toMatchObject({ type: 'ApiKeyCreated', subjectId: createApiKey.apiKey.id, data: { name, scopes: ['agents:read'] } });
    expect(JSON.stringify(r.received[0]?.body)).not.toContain(createApiKey.secret);
  });

  it('serves a source’s event log to other subgraphs only', async () => {
    const events = platform.agents.url.replace(/\/graphql$/, '/events?after=0&limit=10');
    expect((await fetch(events)).status).toBe(401);
    const identity = createIdentityService(loadIdentityConfig({ ...TEST_SECURITY_ENV }));
    const as = async (kind: 'user' | 'service') =>
      fetch(events, {
        headers: { [IDENTITY_HEADER]: await identity.signIdentity({ kind, subject: 'x', tenantId: 'default', scopes: [], agentId: null }, 'agents') },
      });
    expect((await as('user')).status).toBe(403);
    const served = await as('service');
    expect(served.status).toBe(200);
    expect(await served.json()).toMatchObject({ head: expect.any(Number), resume: 'ok', events: expect.any(Array) });
  });

  it('refuses an unknown event type and an invalid filter on save', async () => {
    const res = await fetch(platform.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await withDefaultAuth()) },
      body: JSON.stringify({
        query: CREATE_ENDPOINT,
        variables: { input: { url: 'https://example.com/hook', eventTypes: ['NoSuchEvent'] } },
      }),
    });
    const body = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe('BAD_USER_INPUT');
    const bad = await fetch(platform.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await withDefaultAuth()) },
      body: JSON.stringify({
        query: CREATE_ENDPOINT,
        variables: { input: { url: 'https://example.com/hook', eventTypes: ['AgentRegistered'], filter: 'data.(' } },
      }),
    });
    const badBody = (await bad.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(badBody.errors[0]?.extensions.code).toBe('BAD_USER_INPUT');
    expect(badBody.errors[0]?.message).toMatch(/JSONata/);
  });

  it('delivers the platform’s events after commit, filtered and signed per Standard Webhooks, and tells subscribers', async () => {
    const r = await receiver();
    const tag = randomUUID().slice(0, 8);
    const endpointId = await endpoint(r, { eventTypes: ['AgentRegistered'], filter: `$contains(data.name, "watched-${tag}")` });
    const sub = subscribe(client, {
      query: 'subscription($e: ID) { webhookDeliveryUpdated(endpointId: $e) { status endpointId delivery { messageId eventType } } }',
      variables: { e: endpointId },
    });
    await registerAgent(`ignored-${tag}`);
    const agentId = await registerAgent(`watched-${tag}`);
    await waitFor('the delivery', () => r.received.length >= 1);
    const [got] = r.received;
    expect(got?.body).toMatchObject({ type: 'AgentRegistered', subjectId: agentId, data: { agentId, name: `watched-${tag}` } });
    expect(got?.signature).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(got?.verifiedWith).toEqual(r.secrets);
    expect(r.rejected).toBe(0);
    // Queued (PENDING), then SUCCEEDED.
    const statuses: string[] = [];
    while (!statuses.includes('SUCCEEDED')) {
      const next = await sub.next();
      const event = (next.data as { webhookDeliveryUpdated: { status: string; endpointId: string; delivery: { messageId: string } } }).webhookDeliveryUpdated;
      expect(event.endpointId).toBe(endpointId);
      expect(event.delivery.messageId).toBe(got?.id);
      statuses.push(event.status);
    }
    sub.unsubscribe();
    // Only the watched agent's event went out.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.received.map((x) => x.body.data.name)).toEqual([`watched-${tag}`]);
  });

  it('retries on the schedule, honours Retry-After, and keeps the attempt log', async () => {
    const r = await receiver();
    r.script.push({ status: 500, body: 'boom' }, { status: 429, headers: { 'retry-after': '2' } });
    const endpointId = await endpoint(r, { eventTypes: ['AgentRegistered'], filter: 'false' });
    const id = await sendTest(endpointId);
    const done = await waitFor('the third attempt', async () => {
      const d = await delivery(id);
      return d.status === 'SUCCEEDED' ? d : undefined;
    });
    expect(done.attempts.map((a) => a.statusCode)).toEqual([500, 429, 200]);
    expect(done.attempts[0]?.responseExcerpt).toBe('boom');
    expect(r.uniqueIds()).toEqual(new Set([done.messageId]));
    const at = done.attempts.map((a) => Date.parse(a.at));
    // First retry after the schedule's first step (±20 % jitter); the second waited for Retry-After (2 s), longer than the schedule's 600 ms.
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(RETRY_SCHEDULE[0]! * 0.8);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(2000);
    // The subgraph's own series count them.
    const metrics = await (await fetch(platform.subgraphs.integrations!.url.replace(/\/graphql$/, '/metrics'))).text();
    expect(metrics).toMatch(/integrations_webhook_attempts_total\{[^}]*outcome="retry"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/integrations_webhook_deliveries\{[^}]*status="SUCCEEDED"[^}]*\} [1-9]/);
  });

  it('dead-letters after the schedule, disables the failing endpoint, and retries by hand', async () => {
    const r = await receiver();
    r.script.push(...Array.from({ length: RETRY_SCHEDULE.length + 1 }, () => ({ status: 503 })));
    const endpointId = await endpoint(r, { eventTypes: ['AgentRegistered'], filter: 'false' });
    // Another endpoint hears that it was disabled.
    const watcher = await receiver();
    await endpoint(watcher, { eventTypes: ['WebhookEndpointDisabled'], filter: `data.endpointId = "${endpointId}"` });
    const id = await sendTest(endpointId);
    const dead = await waitFor('the dead letter', async () => {
      const d = await delivery(id);
      return d.status === 'DEAD' ? d : undefined;
    });
    expect(dead.attemptCount).toBe(RETRY_SCHEDULE.length + 1);
    const { webhookEndpoint } = await gqlOk<{ webhookEndpoint: { enabled: boolean; disabledReason: string } }>(
      platform.url,
      'query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }',
      { id: endpointId },
    );
    expect(webhookEndpoint.enabled).toBe(false);
    expect(webhookEndpoint.disabledReason).toMatch(/dead-lettered/);
    await waitFor('the WebhookEndpointDisabled delivery', () => watcher.received.length >= 1);
    expect(watcher.received[0]?.body).toMatchObject({ type: 'WebhookEndpointDisabled', data: { endpointId, url: r.url } });
    await gqlOk(platform.url, 'mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { enabled: true }) { enabled } }', { id: endpointId });
    await gqlOk(platform.url, 'mutation($id: ID!) { retryWebhookDelivery(id: $id) { status } }', { id });
    const ok = await waitFor('the manual retry', async () => {
      const d = await delivery(id);
      return d.status === 'SUCCEEDED' ? d : undefined;
    });
    expect(ok.attemptCount).toBe(RETRY_SCHEDULE.length + 2);
  });

  it('signs with the old and the new secret during a rotation’s overlap', async () => {
    const r = await receiver();
    const endpointId = await endpoint(r, { eventTypes: ['AgentRegistered'], filter: 'false' });
    const old = r.secrets[0]!;
    const { rotateWebhookSecret } = await gqlOk<{ rotateWebhookSecret: { secret: string; endpoint: { secrets: { expiresAt: string | null }[] } } }>(
      platform.url,
      'mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 3600) { secret endpoint { secrets { expiresAt } } } }',
      { id: endpointId },
    );
    expect(rotateWebhookSecret.secret).not.toBe(old);
    r.secrets.push(rotateWebhookSecret.secret);
    // The sender reads secrets at most a second old.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await sendTest(endpointId);
    await waitFor('the delivery', () => r.received.length >= 1);
    expect(r.received[0]?.signature.split(' ')).toHaveLength(2);
    expect(r.received[0]?.verifiedWith.sort()).toEqual([old, rotateWebhookSecret.secret].sort());
  });

  it('replays a time range: the same message again', async () => {
    const r = await receiver();
    const tag = randomUUID().slice(0, 8);
    const from = new Date(Date.now() - 1000).toISOString();
    const endpointId = await endpoint(r, { eventTypes: ['AgentRegistered'], filter: `data.name = "replayed-${tag}"` });
    await registerAgent(`replayed-${tag}`);
    await waitFor('the delivery', () => r.received.length >= 1);
    const { replayWebhookEvents } = await gqlOk<{ replayWebhookEvents: { queued: number } }>(
      platform.url,
      'mutation($id: ID!, $from: DateTime!, $to: DateTime!) { replayWebhookEvents(endpointId: $id, from: $from, to: $to) { queued } }',
      { id: endpointId, from, to: new Date(Date.now() + 1000).toISOString() },
    );
    expect(replayWebhookEvents.queued).toBe(1);
    await waitFor('the replayed delivery', () => r.received.length >= 2);
    expect(r.received[1]?.id).toBe(r.received[0]?.id);
  });

  it('creates over REST with an Idempotency-Key (201, the same endpoint and secret on a repeat) and paces an endpoint to its rate limit', async () => {
    const r = await receiver();
    const key = `ep-${randomUUID()}`;
    const post = async () => {
      const res = await fetch(`${base}/v1/webhooks/endpoints`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key, ...(await withDefaultAuth()) },
        body: JSON.stringify({ url: r.url, eventTypes: ['AgentRegistered'], filter: 'false', rateLimitPerSecond: 2 }),
      });
      return { status: res.status, body: (await res.json()) as { secret: string; endpoint: { id: string; rateLimitPerSecond: number } } };
    };
    const first = await post();
    const again = await post();
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body.endpoint.id).toBe(first.body.endpoint.id);
    expect(again.body.secret).toBe(first.body.secret);
    expect(first.body.endpoint.rateLimitPerSecond).toBe(2);
    r.secrets.push(first.body.secret);
    const list = await fetch(`${base}/v1/webhooks/endpoints?first=100`, { headers: await withDefaultAuth() });
    expect(((await list.json()) as { nodes: { id: string }[] }).nodes.map((n) => n.id)).toContain(first.body.endpoint.id);
    for (let i = 0; i < 4; i++) await sendTest(first.body.endpoint.id);
    await waitFor('four deliveries', () => r.received.length >= 4);
    // 2 per second: four deliveries span at least 1.5 s.
    expect(r.received[3]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(1400);
  });

  it('refuses to deliver to link-local and private addresses', async () => {
    const { createWebhookEndpoint } = await gqlOk<{ createWebhookEndpoint: { endpoint: { id: string } } }>(platform.url, CREATE_ENDPOINT, {
      input: { url: 'http://169.254.169.254/latest/meta-data', eventTypes: ['AgentRegistered'], filter: 'false' },
    });
    const id = await sendTest(createWebhookEndpoint.endpoint.id);
    const d = await waitFor('the refused attempt', async () => {
      const x = await delivery(id);
      return x.attemptCount >= 1 ? x : undefined;
    });
    expect(d.attempts[0]?.statusCode).toBeNull();
    expect(d.attempts[0]?.error).toMatch(/refused: address 169\.254\.169\.254 is private, loopback or link-local/);
  });
});

describe('inbound webhooks and triggers', () => {
  it('GitHub: a bad signature is 401; a good push starts a task through a trigger, once', async () => {
    const { createInboundIntegration } = await gqlOk<{ createInboundIntegration: { secret: string; integration: { id: string; hookPath: string } } }>(
      platform.url,
      'mutation { createInboundIntegration(input: { provider: GITHUB, name: "repo" }) { secret integration { id hookPath } } }',
    );
    const { secret, integration } = createInboundIntegration;
    const { createTrigger } = await gqlOk<{ createTrigger: { id: string } }>(
      platform.url,
      `mutation($input: CreateTriggerInput!) { createTrigger(input: $input) { id } }`,
      {
        input: {
          name: 'build on push',
          eventType: 'GitHubWebhookReceived',
          filter: `data.event = "push" and data.integrationId = "${integration.id}"`,
          action: { kind: 'SUBMIT_TASK', config: { title: 'Build {{ data.body.repository.full_name }}', input: { ref: '{{ data.body.ref }}' } } },
        },
      },
    );
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/widgets' } });
    const delivery = randomUUID();
    const bad = await hook(integration.hookPath, body, {
      'x-github-event': 'push',
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', 'not-the-secret').update(body).digest('hex')}`,
    });
    expect(bad.status).toBe(401);
    expect(bad.body.code).toBe('WEBHOOK_SIGNATURE_INVALID');
    const headers = {
      'x-github-event': 'push',
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    };
    expect((await hook(integration.hookPath, body, headers)).status).toBe(202);
    // The same delivery again: refused, and the trigger does not run twice.
    const replay = await hook(integration.hookPath, body, headers);
    expect(replay.status).toBe(409);
    expect(replay.body.code).toBe('WEBHOOK_REPLAYED');
    const run = await waitFor('the trigger run', async () => {
      const { trigger } = await gqlOk<{ trigger: { runs: { nodes: { status: string; result: { taskId: string } | null; error: string | null }[] } } }>(
        platform.url,
        'query($id: ID!) { trigger(id: $id) { runs { nodes { status result error } } } }',
        { id: createTrigger.id },
      );
      const first = trigger.runs.nodes[0];
      return first && first.status !== 'PENDING' && first.status !== 'RUNNING' ? trigger.runs.nodes : undefined;
    });
    expect(run).toHaveLength(1);
    expect(run[0]?.error).toBeNull();
    expect(run[0]?.status).toBe('SUCCEEDED');
    const { task } = await gqlOk<{ task: { title: string; input: unknown } }>(platform.url, 'query($id: ID!) { task(id: $id) { title input } }', {
      id: run[0]?.result?.taskId,
    });
    expect(task).toEqual({ title: 'Build acme/widgets', input: { ref: 'refs/heads/main' } });
  });

  it('GitLab: the token is compared; Standard Webhooks: signature and timestamp are checked', async () => {
    const { createInboundIntegration: gitlab } = await gqlOk<{ createInboundIntegration: { secret: string; integration: { hookPath: string } } }>(
      platform.url,
      'mutation { createInboundIntegration(input: { provider: GITLAB, name: "gl" }) { secret integration { hookPath } } }',
    );
    const body = JSON.stringify({ object_kind: 'push' });
    expect(
      (await hook(gitlab.integration.hookPath, body, { 'x-gitlab-token': 'wrong', 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': randomUUID() })).status,
    ).toBe(401);
    expect(
      (await hook(gitlab.integration.hookPath, body, { 'x-gitlab-token': gitlab.secret, 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': randomUUID() }))
        .status,
    ).toBe(202);

    const { createInboundIntegration: standard } = await gqlOk<{ createInboundIntegration: { secret: string; integration: { hookPath: string } } }>(
      platform.url,
      'mutation { createInboundIntegration(input: { provider: STANDARD_WEBHOOKS, name: "partner" }) { secret integration { hookPath } } }',
    );
    const wh = new Webhook(standard.secret);
    const payload = JSON.stringify({ type: 'invoice.paid', data: { id: 'inv_1' } });
    const id = `msg_${randomUUID()}`;
    const now = new Date();
    const signed = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': wh.sign(id, now, payload) };
    expect((await hook(standard.integration.hookPath, payload, signed)).status).toBe(202);
    expect((await hook(standard.integration.hookPath, payload, signed)).status).toBe(409);
    const stale = new Date(Date.now() - 10 * 60_000);
    const staleId = `msg_${randomUUID()}`;
    const old = {
      'webhook-id': staleId,
      'webhook-timestamp': String(Math.floor(stale.getTime() / 1000)),
      'webhook-signature': wh.sign(staleId, stale, payload),
    };
    expect((await hook(standard.integration.hookPath, payload, old)).status).toBe(401);
  });
});

describe('trigger actions', () => {
  it('starts a workflow run, posts Block Kit to a Slack incoming webhook, and delivers to an endpoint', async () => {
    const tag = randomUUID().slice(0, 8);
    // A Slack incoming webhook stand-in: records the JSON it is sent.
    const slackBodies: unknown[] = [];
    const slack = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        slackBodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => slack.listen(0, '127.0.0.1', () => resolve()));
    const slackUrl = `http://127.0.0.1:${(slack.address() as AddressInfo).port}/services/T000/B000/XXXX`;
    try {
      const { createWorkflowDefinition } = await gqlOk<{ createWorkflowDefinition: { id: string } }>(
        platform.url,
        'mutation { createWorkflowDefinition(input: { name: "On agent", steps: [{ id: "greet", title: "Greet" }] }) { id } }',
      );
      const target = await receiver();
      const endpointId = await endpoint(target, { eventTypes: ['AgentRegistered'], filter: 'false' });
      const filter = `data.name = "trigger-${tag}"`;
      const create = (action: Record<string, unknown>) =>
        gqlOk<{ createTrigger: { id: string } }>(platform.url, 'mutation($input: CreateTriggerInput!) { createTrigger(input: $input) { id } }', {
          input: { name: String(action.kind), eventType: 'AgentRegistered', filter, action },
        }).then((d) => d.createTrigger.id);
      const ids = await Promise.all([
        create({ kind: 'START_WORKFLOW_RUN', config: { definitionId: createWorkflowDefinition.id, input: { agent: '{{ data.agentId }}' } } }),
        create({
          kind: 'SLACK_POST',
          config: {
            webhookUrl: slackUrl,
            text: 'New agent {{ data.name }}',
            blocks: [{ type: 'section', text: { type: 'mrkdwn', text: '*{{ data.name }}* registered' } }],
          },
        }),
        create({ kind: 'DELIVER_TO_ENDPOINT', config: { endpointId } }),
      ]);
      const agentId = await registerAgent(`trigger-${tag}`);
      const runs = await waitFor('three finished runs', async () => {
        const all = await Promise.all(
          ids.map(async (id) => {
            const { trigger } = await gqlOk<{
              trigger: { runs: { nodes: { status: string; result: Record<string, string> | null; error: string | null }[] } };
            }>(platform.url, 'query($id: ID!) { trigger(id: $id) { runs { nodes { status result error } } } }', { id });
            return trigger.runs.nodes[0];
          }),
        );
        return all.every((r) => r && (r.status === 'SUCCEEDED' || r.status === 'FAILED')) ? all : undefined;
      });
      expect(runs.map((r) => [r?.status, r?.error])).toEqual([
        ['SUCCEEDED', null],
        ['SUCCEEDED', null],
        ['SUCCEEDED', null],
      ]);
      const { workflowRun } = await gqlOk<{ workflowRun: { definition: { id: string }; input: unknown } }>(
        platform.url,
        'query($id: ID!) { workflowRun(id: $id) { definition { id } input } }',
        { id: runs[0]?.result?.workflowRunId },
      );
      expect(workflowRun).toEqual({ definition: { id: createWorkflowDefinition.id }, input: { agent: agentId } });
      expect(slackBodies).toEqual([
        { text: `New agent trigger-${tag}`, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `*trigger-${tag}* registered` } }] },
      ]);
      await waitFor('the endpoint delivery', () => target.received.length >= 1);
      expect(target.received[0]?.body).toMatchObject({ type: 'AgentRegistered', subjectId: agentId });
    } finally {
      slack.closeAllConnections();
      slack.close();
    }
  });
});

describe('durability', () => {
  it('delivers every event after the integrations process is killed mid-delivery', async () => {
    const r = await receiver();
    const tag = randomUUID().slice(0, 8);
    // The first requests are held open: the process dies with them in flight.
    r.script.push('hold', 'hold', 'hold');
    await endpoint(r, { eventTypes: ['AgentRegistered'], filter: `$contains(data.name, "${tag}")` });
    const before = await Promise.all([1, 2, 3, 4, 5].map((i) => registerAgent(`kill-${tag}-${i}`)));
    await waitFor('deliveries in flight', () => r.held() >= 3);
    const integrations = platform.subgraphs.integrations!;
    integrations.kill('SIGKILL');
    await integrations.exited();
    // Events committed while integrations is down wait in their source's log.
    const during = await Promise.all([6, 7, 8].map((i) => registerAgent(`kill-${tag}-${i}`)));
    r.releaseHeld();
    await integrations.restart();
    const all = [...before, ...during];
    await waitFor(
      'every event delivered',
      () => {
        const delivered = new Set(r.received.map((x) => x.body.subjectId));
        return all.every((id) => delivered.has(id));
      },
      30_000,
    );
    // At least once: an event may arrive twice (the held ones), never with another message id.
    const byAgent = new Map<string, Set<string>>();
    for (const x of r.received) byAgent.set(x.body.subjectId, new Set([...(byAgent.get(x.body.subjectId) ?? []), x.id]));
    for (const id of all) expect(byAgent.get(id)?.size).toBe(1);
    expect(r.rejected).toBe(0);
  }, 60_000);
});
