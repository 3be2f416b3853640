// The built gateway (scripts/build-gateway.ts), what `npm run gateway` runs: one bundle that finds
// the files its modules read next to their sources (supergraph, REST operations, docs assets),
// started with the node flags the benchmark measured.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGateway, GATEWAY_NODE_ARGS } from '../../scripts/build-gateway.ts';
import { getFreePort } from '../support/processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
// Inside the repository: the bundle imports its packages from node_modules.
const dir = join(ROOT, 'dist', `test-${process.pid}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the built gateway', () => {
  it('is what `npm run gateway` starts, with the measured node flags', () => {
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.gateway).toBe(`tsx scripts/build-gateway.ts && exec node ${GATEWAY_NODE_ARGS.join(' ')} dist/gateway.mjs`);
  });

  it('serves GraphQL, REST, OpenAPI and the docs, reading its files where the sources are', async () => {
    mkdirSync(dir, { recursive: true });
    const bundle = await buildGateway(join(dir, 'gateway.mjs'));
    const code = readFileSync(bundle, 'utf8');
    expect(code).not.toContain('import.meta.url');
    expect(code).toContain(JSON.stringify(pathToFileURL(join(ROOT, 'gateway', 'config.ts')).href));

    const port = await getFreePort();
    const child = spawn(process.execPath, [...GATEWAY_NODE_ARGS, bundle], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'development', GATEWAY_PORT: String(port), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const base = `http://127.0.0.1:${port}`;
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const ready = await fetch(`${base}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (ready === 200) break;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the built gateway did not become ready:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const typename = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(await typename.json()).toEqual({ data: { __typename: 'Query' } });
      const openapi = await fetch(`${base}/openapi.json`);
      expect(openapi.status).toBe(200);
      expect(((await openapi.json()) as { paths: Record<string, unknown> }).paths).toHaveProperty(['/v1/agents']);
      const docs = await fetch(`${base}/docs`);
      expect(docs.status).toBe(200);
      const asset = await fetch(`${base}/assets/docs/docs.css`);
      expect(asset.status).toBe(200);
      expect(await asset.text()).toBe(readFileSync(join(ROOT, 'gateway', 'docs', 'static', 'docs.css'), 'utf8'));
      // prom-client bundled: the default process metrics and the request just made.
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).toBe(200);
      const exposition = await metrics.text();
      expect(exposition).toContain('# TYPE process_cpu_seconds_total counter');
      expect(exposition).toMatch(/^graphql_operation_duration_seconds_count\{[^}]*operation_type="query"[^}]*\} [1-9]\d*$/m);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    // A graceful stop: SIGTERM reaches node itself (the script execs it) and it exits 0.
    expect(child.exitCode).toBe(0);
  });
});

describe('gateway/preload/federation-exports.cjs', () => {
  it('swaps @apollo/federation-internals’ getters for the very same values, before the gateway loads it', async () => {
    const script = `
      const original = require('@apollo/federation-internals');
      const values = Object.fromEntries(Object.keys(original).map((k) => [k, original[k]]));
      require('./gateway/preload/federation-exports.cjs');
      const patched = require('@apollo/federation-internals');
      const keys = Object.keys(patched);
      const same = keys.length === Object.keys(values).length && keys.every((k) => patched[k] === values[k]);
      const plain = keys.every((k) => !Object.getOwnPropertyDescriptor(patched, k).get);
      const { ApolloGateway } = require('@apollo/gateway');
      console.log(JSON.stringify({ replaced: patched !== original, same, plain, count: keys.length, esModule: patched.__esModule, gateway: typeof ApolloGateway }));
    `;
    const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    const result = JSON.parse(output) as Record<string, unknown>;
    expect(result).toMatchObject({ replaced: true, same: true, plain: true, esModule: true, gateway: 'function' });
    expect(result.count).toBeGreaterThan(100);
  });
});
