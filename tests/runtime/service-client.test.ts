// A subgraph calling another that runs as several replicas (SUBGRAPH_<NAME>_URL lists them): the
// calls go to the replicas in turn, a replica that refuses the connection is skipped, and a call
// that may have reached one (it timed out) is never sent to another.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { env, loadConfig } from '../../runtime/config.ts';
import { createIdentityService } from '../../runtime/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createServiceClient } from '../../runtime/service-client.ts';
import { getFreePort } from '../support/processes.ts';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A replica answering every call with its own name, or never answering when `hang`. */
async function replica(name: string, hang = false): Promise<{ url: string; calls: () => number }> {
  let calls = 0;
  const server = createServer((req, res) => {
    calls++;
    req.resume();
    if (hang) return;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data: { who: name } }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, calls: () => calls };
}

const identity = createIdentityService({ secret: new TextEncoder().encode('x'.repeat(32)), ttlSeconds: 60, developmentSecret: true, allowUnsignedDev: false });
const logger = createLogger('test', 'silent');
const caller = { tenantId: 'acme', scopes: ['agents:read'] };

describe('service client over several replicas', () => {
  it('spreads calls over the replicas in turn', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const client = createServiceClient({ from: 'orchestration', to: 'agents', url: [a.url, b.url], identity, logger });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await client.query<{ who: string }>(caller, '{ who }')).who);
    expect(answers.sort()).toEqual(['a', 'a', 'b', 'b']);
  });

  it('skips a replica that refuses the connection', async () => {
    const refused = `http://127.0.0.1:${await getFreePort()}/graphql`;
    const b = await replica('b');
    const client = createServiceClient({ from: 'orchestration', to: 'agents', url: [refused, b.url], identity, logger });
    for (let i = 0; i < 4; i++) expect((await client.query<{ who: string }>(caller, '{ who }')).who).toBe('b');
  });

  it('never sends a call that may have arrived (a timeout) to another replica', async () => {
    const hung = await replica('hung', true);
    const b = await replica('b');
    const client = createServiceClient({ from: 'agents', to: 'governance', url: [hung.url, b.url], identity, logger, timeoutMs: 300 });
    await expect(client.query(caller, 'mutation { mint }')).rejects.toMatchObject({
      extensions: { code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'governance' },
    });
    expect(hung.calls()).toBe(1);
    expect(b.calls()).toBe(0);
  });

  it('reads SUBGRAPH_<NAME>_URL as one URL or several, comma-separated, each checked', () => {
    const spec = { U: env.urls('replicas', ['http', 'https'], 'http://127.0.0.1:1/graphql') };
    expect(loadConfig(spec, {}).U).toEqual(['http://127.0.0.1:1/graphql']);
    expect(loadConfig(spec, { U: 'http://a:1/graphql, http://b:2/graphql' }).U).toEqual(['http://a:1/graphql', 'http://b:2/graphql']);
    expect(() => loadConfig(spec, { U: 'http://a:1/graphql,ftp://b' })).toThrow(/U: expected a http or https URL/);
  });
});
