// A subgraph's /readyz says what is true: without Redis it still serves (writes commit, their
// events wait in the outbox and are relayed once Redis is back), so it stays ready and reports
// the event bus as degraded; without its database it cannot serve: 503. Redis is taken away
// through a TCP relay (tests/support/redis-proxy.ts), never by touching the shared server.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSubgraph, type RunningSubgraph } from '../../runtime/subgraph.ts';
import { agents } from '../../subgraphs/agents/index.ts';
import { identityHeaders, TEST_SECURITY_ENV } from '../support/auth.ts';
import { DATABASE_URL, dropSchema, REDIS_URL } from '../support/databases.ts';
import { startRedisProxy, type RedisProxy } from '../support/redis-proxy.ts';
import { waitFor } from '../subscriptions/support.ts';

const skip = REDIS_URL ? false : 'REDIS_URL is not set';
if (skip) console.warn(`[tests] subgraph readiness without Redis is skipped: ${skip} (CI sets it).`);

interface Readiness {
  status: string;
  checks?: Record<string, string>;
  reason?: string;
}

describe.skipIf(skip)(`a subgraph's /readyz while Redis or its database is down${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let running: RunningSubgraph;
  let proxy: RedisProxy;
  const dataDir = mkdtempSync(join(tmpdir(), 'readiness-'));
  const isolation = `t${randomBytes(4).toString('hex')}_`;

  beforeAll(async () => {
    proxy = await startRedisProxy(REDIS_URL as string);
    running = await startSubgraph(agents, {
      ...process.env,
      AGENTS_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      DATABASE_SCHEMA_PREFIX: isolation,
      EVENT_CHANNEL_PREFIX: isolation,
      REDIS_URL: proxy.url,
      REDIS_CONNECT_TIMEOUT_MS: '300',
      REDIS_COMMAND_TIMEOUT_MS: '300',
      ...TEST_SECURITY_ENV,
    });
  });
  afterAll(async () => {
    await running?.stop();
    await proxy?.close();
    rmSync(dataDir, { recursive: true, force: true });
    if (DATABASE_URL) await dropSchema(`${isolation}agents`);
  });

  async function readiness(): Promise<{ status: number; body: Readiness }> {
    const res = await fetch(running.url.replace(/\/graphql$/, '/readyz'));
    return { status: res.status, body: (await res.json()) as Readiness };
  }

  /** The degraded metric of the event bus, as /metrics says it (1 degraded, 0 ok). */
  async function eventsDegraded(): Promise<number | undefined> {
    const text = await (await fetch(running.url.replace(/\/graphql$/, '/metrics'))).text();
    const line = /^subgraph_dependency_degraded\{[^}]*dependency="events"[^}]*\} (\d+)$/m.exec(text);
    return line ? Number(line[1]) : undefined;
  }

  async function register(name: string): Promise<{ errors?: unknown; data?: { registerAgent: { id: string } } }> {
    const res = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await identityHeaders('agents')) },
      body: JSON.stringify({ query: 'mutation($input: RegisterAgentInput!) { registerAgent(input: $input) { id } }', variables: { input: { name } } }),
    });
    return (await res.json()) as { errors?: unknown; data?: { registerAgent: { id: string } } };
  }

  it('is ready with every check ok while everything is up', async () => {
    expect(await readiness()).toEqual({ status: 200, body: { status: 'ready', checks: { database: 'ok', events: 'ok' } } });
  });

  it('stays ready without Redis, reporting the event bus degraded, and writes still commit', async () => {
    proxy.cut();
    try {
      const down = await readiness();
      expect(down.status).toBe(200);
      expect(down.body.status).toBe('ready');
      expect(down.body.checks?.database).toBe('ok');
      expect(down.body.checks?.events).toMatch(/^degraded: .+; events wait in the outbox until it is back$/);
      // And in a metric, for alerting (SubgraphEventsDegraded).
      expect(await eventsDegraded()).toBe(1);
      const written = await register('Written while Redis is down');
      expect(written.errors).toBeUndefined();
      expect(written.data?.registerAgent.id).toEqual(expect.any(String));
    } finally {
      proxy.restore();
    }
    // Once Redis answers again the check says so (ioredis reconnects in its own time).
    await waitFor('the event bus reported ok again', async () => (await readiness()).body.checks?.events === 'ok');
    expect(await readiness()).toEqual({ status: 200, body: { status: 'ready', checks: { database: 'ok', events: 'ok' } } });
    expect(await eventsDegraded()).toBe(0);
  });

  it('is 503 once its database is gone', async () => {
    await running.database.close();
    const gone = await readiness();
    expect(gone.status).toBe(503);
    expect(gone.body.status).toBe('unavailable');
  });
});
