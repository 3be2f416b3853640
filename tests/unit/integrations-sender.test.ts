// The webhook sender's safety rules against real local servers, and the integrations domain's
// pure rules: which addresses are refused (after DNS resolution too), redirects, the answer's size
// bound, the timeout, the retry schedule with jitter and Retry-After, filters and templates.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressRefusal,
  allowedNetworks,
  expression,
  fill,
  matches,
  nextAttemptDelay,
  normaliseTrigger,
  parseRetryAfter,
  viewOf,
} from '../../subgraphs/integrations/domain.ts';
import { SafeSender } from '../../subgraphs/integrations/sender.ts';

let server: Server;
let port: number;
let hits = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits += 1;
    if (req.url === '/redirect') return void res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
    if (req.url === '/big') return void res.writeHead(200).end('x'.repeat(200_000));
    if (req.url === '/slow') return void setTimeout(() => res.writeHead(200).end('late'), 2000);
    if (req.url === '/busy') return void res.writeHead(503, { 'retry-after': '7' }).end('busy');
    res.writeHead(200).end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const loopbackAllowed = () => new SafeSender({ timeoutMs: 500, maxResponseBytes: 65_536, allowed: allowedNetworks(['127.0.0.0/8']) });

describe('the webhook sender', () => {
  it('refuses loopback by literal and by a name that resolves to it, sending nothing', async () => {
    const sender = new SafeSender({ timeoutMs: 1000, maxResponseBytes: 1024, allowed: allowedNetworks([]) });
    const before = hits;
    const literal = await sender.post(`http://127.0.0.1:${port}/`, {}, '{}');
    expect(literal).toMatchObject({ statusCode: null, blocked: true, error: expect.stringMatching(/refused: address 127\.0\.0\.1 is private/) });
    const named = await sender.post(`http://localhost:${port}/`, {}, '{}');
    expect(named).toMatchObject({ statusCode: null, blocked: true, error: expect.stringMatching(/refused: localhost: address (127\.0\.0\.1|::1) is private/) });
    const mapped = await sender.post(`http://[::ffff:127.0.0.1]:${port}/`, {}, '{}');
    expect(mapped.blocked).toBe(true);
    expect(hits).toBe(before);
    await sender.close();
  });

  it('reaches an allowed network, by name too', async () => {
    const sender = loopbackAllowed();
    const res = await sender.post(`http://localhost:${port}/`, {}, '{}');
    expect(res).toMatchObject({ statusCode: 200, error: null, responseExcerpt: 'ok', blocked: false });
    await sender.close();
  });

  it('does not follow a redirect, bounds the answer, times out, and passes Retry-After on', async () => {
    const sender = new SafeSender({ timeoutMs: 500, maxResponseBytes: 4096, allowed: allowedNetworks(['127.0.0.0/8']) });
    const before = hits;
    const redirect = await sender.post(`http://127.0.0.1:${port}/redirect`, {}, '{}');
    expect(redirect).toMatchObject({ statusCode: 302, error: 'HTTP 302: redirects are not followed' });
    expect(hits).toBe(before + 1);
    const big = await sender.post(`http://127.0.0.1:${port}/big`, {}, '{}');
    expect(big.statusCode).toBe(200);
    expect(big.responseExcerpt).toHaveLength(1024);
    const slow = await sender.post(`http://127.0.0.1:${port}/slow`, {}, '{}');
    expect(slow).toMatchObject({ statusCode: null, error: 'timed out after 500 ms' });
    const busy = await sender.post(`http://127.0.0.1:${port}/busy`, {}, '{}');
    expect(busy).toMatchObject({ statusCode: 503, error: 'HTTP 503', retryAfter: '7' });
    await sender.close();
  });
});

describe('integrations rules', () => {
  it('classifies addresses: private, loopback, link-local, CGNAT, IPv6 and mapped forms are refused', () => {
    const none = allowedNetworks([]);
    for (const a of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '127.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:10.0.0.1',
      '::',
    ])
      expect(addressRefusal(a, none), a).not.toBeNull();
    for (const a of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '::ffff:93.184.216.34']) expect(addressRefusal(a, none), a).toBeNull();
    expect(addressRefusal('10.1.2.3', allowedNetworks(['10.0.0.0/8']))).toBeNull();
  });

  it('schedules retries with ±20 % jitter, honours a longer Retry-After (capped at a day), and ends the schedule', () => {
    const schedule = [5000, 300_000];
    expect(nextAttemptDelay(schedule, 1, null, () => 0)).toBe(4000);
    expect(nextAttemptDelay(schedule, 1, null, () => 1)).toBe(6000);
    expect(nextAttemptDelay(schedule, 2, null, () => 0.5)).toBe(300_000);
    expect(nextAttemptDelay(schedule, 1, 60_000, () => 0.5)).toBe(60_000);
    expect(nextAttemptDelay(schedule, 1, 1000, () => 0.5)).toBe(5000);
    expect(nextAttemptDelay(schedule, 1, 10 * 86_400_000, () => 0.5)).toBe(86_400_000);
    expect(nextAttemptDelay(schedule, 3, null)).toBeNull();
    expect(parseRetryAfter('120', 0)).toBe(120_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10_000);
    expect(parseRetryAfter('soon', 0)).toBeNull();
  });

  it('evaluates filters and fills templates with JSONata, refusing bad ones on save', async () => {
    const view = viewOf({
      id: 'e1',
      type: 'GitHubWebhookReceived',
      tenantId: 't',
      subjectId: 's',
      occurredAt: 'now',
      payload: { event: 'push', body: { ref: 'refs/heads/main', commits: [1, 2] } },
    });
    expect(await matches('data.event = "push" and $count(data.body.commits) = 2', view)).toBe(true);
    expect(await matches('data.event = "issues"', view)).toBe(false);
    expect(await matches(null, view)).toBe(true);
    expect(await fill({ title: 'Build {{ data.body.ref }}', n: '{{ $count(data.body.commits) }}', keep: 3 }, view)).toEqual({
      title: 'Build refs/heads/main',
      n: 2,
      keep: 3,
    });
    expect(() => expression('data.(', 'input.filter')).toThrow(/JSONata/);
    expect(() => normaliseTrigger({ name: 'x', eventType: 'TaskStateChanged', action: { kind: 'SUBMIT_TASK', config: { title: '{{ data.( }}' } } })).toThrow(
      /input.action.config.title is not a valid JSONata expression/,
    );
    expect(() => normaliseTrigger({ name: 'x', eventType: 'TaskStateChanged', action: { kind: 'SLACK_POST', config: { text: 'hi' } } })).toThrow(
      /webhookUrl is required/,
    );
  });
});
