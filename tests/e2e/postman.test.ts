// The Postman collection partners import (docs/postman, generated from the OpenAPI document) run
// end to end by Newman against a running platform, with the local environment and a token: every
// request is sent, and every answer passes the collection's checks (no server error; errors are
// problem+json with their status). The collection's placeholder values make many requests
// refusals (unknown ids, bad values): those are answers too, and must be well-formed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import newman, { type NewmanRunSummary } from 'newman';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COLLECTION_FILE, ENVIRONMENT_FILE } from '../../scripts/postman.ts';
import { userToken } from '../support/auth.ts';
import { manageProcesses, REPO_ROOT, startPlatform, supergraphSubgraphs, type Platform } from '../support/processes.ts';

manageProcesses();

let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-postman-'));
  // Every subgraph: the collection has a request for every route.
  platform = await startPlatform({ dataDir, with: supergraphSubgraphs });
});

afterAll(async () => {
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('Postman collection', () => {
  it('runs with Newman: every request answered, no server error, every error problem+json', async () => {
    const collection = JSON.parse(readFileSync(join(REPO_ROOT, COLLECTION_FILE), 'utf8')) as object;
    const environment = JSON.parse(readFileSync(join(REPO_ROOT, ENVIRONMENT_FILE), 'utf8')) as { values: { key: string; value: string }[] };
    const values = environment.values.map((v) =>
      v.key === 'baseUrl' ? { ...v, value: platform.url.replace(/\/graphql$/, '') } : v.key === 'token' ? { ...v, value: '' } : v,
    );
    const token = await userToken();
    const summary = await new Promise<NewmanRunSummary>((resolve, reject) =>
      newman.run(
        {
          collection,
          environment: { ...environment, values: values.map((v) => (v.key === 'token' ? { ...v, value: token } : v)) },
          reporters: [],
          timeoutRequest: 15_000,
        },
        (err, result) => (err ? reject(err) : resolve(result)),
      ),
    );
    const { requests, assertions } = summary.run.stats;
    const sent = requests.total ?? 0;
    expect(sent).toBeGreaterThan(30);
    expect(requests.failed).toBe(0);
    // Each answer ran the collection's checks (two for an error).
    expect(assertions.total ?? 0).toBeGreaterThanOrEqual(sent);
    const statuses = summary.run.executions.map((e) => (e.response as { code?: number } | undefined)?.code ?? 0);
    expect(statuses.filter((s) => s >= 200 && s < 300).length, 'some requests succeed').toBeGreaterThan(5);
    expect(statuses.filter((s) => s >= 400 && s < 500).length, 'some placeholders are refused').toBeGreaterThan(5);
    const failures = summary.run.failures.map((f) => `${f.source?.name ?? '?'}: ${f.error.message}`);
    expect(failures).toEqual([]);
  });
});
