// runtime/service-client.ts with several replicas of the callee: one that refuses connections is
// skipped (nothing was sent), one that got the request is never asked again for the same call.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityService, loadIdentityConfig } from '../../runtime/identity.ts';
import { createServiceClient } from '../../runtime/service-client.ts';
import { TEST_SECURITY_ENV } from '../support/auth.ts';
import { silentLogger } from '../support/databases.ts';
import { getFreePort } from '../support/processes.ts';

let answering: Server;
let dropping: Server;
let answeringUrl: string;
let droppingUrl: string;
let refusingUrl: string;
const received = { answering: 0, dropping: 0 };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

beforeAll(async () => {
  answering = createServer((req, res) => {
    received.answering++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}'));
  });
  // Takes the request, then closes the connection without an answer.
  dropping = createServer((req) => {
    received.dropping++;
    req.resume();
    req.on('end', () => req.socket.destroy());
  });
  answeringUrl = await listen(answering);
  droppingUrl = await listen(dropping);
  refusingUrl = `http://127.0.0.1:${await getFreePort()}/graphql`;
});

afterAll(async () => {
  await new Promise((resolve) => answering.close(resolve));
  await new Promise((resolve) => dropping.close(resolve));
});

const identity = createIdentityService(loadIdentityConfig({ ...TEST_SECURITY_ENV }));
const caller = { tenantId: 'default', scopes: ['agents:read'] };

describe('service client with several replicas', () => {
  it('skips a replica that refuses the connection and asks the next', async () => {
    const client = createServiceClient({ from: 'orchestration', to: 'agents', url: [refusingUrl, answeringUrl], identity, logger: silentLogger });
    const before = received.answering;
    expect(await client.query(caller, '{ ok }')).toEqual({ ok: true });
    expect(received.answering).toBe(before + 1);
  });

  it('does not send a call again to another replica once one received it', async () => {
    const client = createServiceClient({ from: 'agents', to: 'governance', url: [droppingUrl, answeringUrl], identity, logger: silentLogger });
    const before = { ...received };
    await expect(client.query(caller, 'mutation { mint }')).rejects.toMatchObject({
      extensions: { code: 'DEPENDENCY_UNAVAILABLE', serviceName: 'governance' },
    });
    expect(received.dropping).toBe(before.dropping + 1);
    expect(received.answering).toBe(before.answering);
  });
});
