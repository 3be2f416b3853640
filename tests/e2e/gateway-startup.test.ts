// `npm run gateway` with a configuration it cannot use: it must say what is wrong and exit 1,
// not print a stack trace or start half-working.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getFreePort, runToExit } from '../support/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'e2e-gateway-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('gateway start-up failures', () => {
  it('names every bad variable at once', async () => {
    const result = await runToExit({ args: ['gateway/main.ts'], env: { GATEWAY_PORT: 'http', SUBGRAPH_AGENTS_URL: 'agents:4001', SUBGRAPH_TIMEOUT_MS: '-5' } });
    expect(result.code).toBe(1);
    expect(result.output).toContain('Invalid configuration:');
    expect(result.output).toMatch(/GATEWAY_PORT: expected a port number 0-65535, got "http"/);
    expect(result.output).toMatch(/SUBGRAPH_AGENTS_URL: expected a http or https URL/);
    expect(result.output).toMatch(/SUBGRAPH_TIMEOUT_MS: expected an integer >= 1, got "-5"/);
    expect(result.output).not.toMatch(/\n\s+at /);
  });

  it('says how to get a supergraph file when there is none', async () => {
    const missing = join(dir, 'missing.graphql');
    const result = await runToExit({ args: ['gateway/main.ts'], env: { SUPERGRAPH_PATH: missing, GATEWAY_PORT: String(await getFreePort()) } });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`Supergraph file not found: ${missing}`);
    expect(result.output).toContain('npm run compose');
    expect(result.output).not.toMatch(/\n\s+at /);
  });

  it('refuses to start on an invalid supergraph file', async () => {
    const path = join(dir, 'broken.graphql');
    writeFileSync(path, 'type Query { hello: String }');
    const result = await runToExit({ args: ['gateway/main.ts'], env: { SUPERGRAPH_PATH: path, GATEWAY_PORT: String(await getFreePort()) } });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`The supergraph file ${path} is not usable:`);
    expect(result.output).not.toMatch(/\n\s+at /);
  });
});
