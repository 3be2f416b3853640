// The documentation pages in a real browser (headless Chromium from Debian's `chromium` package,
// driven by playwright-core) against the real gateway: Swagger UI expands an operation and runs
// it, Redoc renders the document, GraphiQL runs a query. Every page must work without internet:
// no request may reach another origin (the pages' Content-Security-Policy blocks any attempt).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAuthorization } from '../support/auth.ts';
import { gqlOk, manageProcesses, startPlatform, type Platform } from '../support/processes.ts';

const CHROMIUM = '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
if (missing) console.warn(`[tests] browser tests are skipped: ${CHROMIUM} is missing (apt-get install -y chromium; CI installs it).`);

manageProcesses();

let dataDir: string;
let platform: Platform;
let base: string;
let browser: Browser | undefined;

beforeAll(async () => {
  if (missing) return;
  dataDir = mkdtempSync(join(tmpdir(), 'browser-docs-'));
  platform = await startPlatform({ dataDir });
  base = platform.url.replace(/\/graphql$/, '');
  // A team label, as the demo agents have: what "Try it out" on GET /v1/agents pre-fills finds it.
  await gqlOk(platform.url, `mutation { registerAgent(input: { name: "Browsable", labels: [{ key: "team", value: "docs" }] }) { id } }`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface Visit {
  page: Page;
  /** Requests to other origins that were not blocked before leaving the browser. */
  escaped: string[];
  /** Uncaught page errors. */
  errors: string[];
}

/** `storage`: localStorage entries the page starts with (GraphiQL's persisted headers). */
async function visit(path: string, storage: Record<string, string> = {}): Promise<Visit> {
  if (!browser) throw new Error('no browser');
  const page = await browser.newPage();
  await page.addInitScript((entries: Record<string, string>) => {
    const storage = (globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } }).localStorage;
    for (const [key, value] of Object.entries(entries)) storage.setItem(key, value);
  }, storage);
  const visitState: Visit = { page, escaped: [], errors: [] };
  const local = (url: string) => url.startsWith(base) || url.startsWith('data:') || url.startsWith('blob:');
  page.on('requestfinished', (r) => {
    if (!local(r.url())) visitState.escaped.push(r.url());
  });
  page.on('requestfailed', (r) => {
    // Blocked by the page's CSP never leaves the browser; any other failure was a real attempt.
    if (!local(r.url()) && r.failure()?.errorText !== 'csp') visitState.escaped.push(`${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('pageerror', (e) => visitState.errors.push(e.message));
  const response = await page.goto(`${base}${path}`);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");
  return visitState;
}

describe.skipIf(missing)(`documentation in a browser${missing ? ` (skipped: ${CHROMIUM} not installed)` : ''}`, () => {
  it('/docs: Swagger UI lists the operations, expands one and runs it against the gateway', async () => {
    const { page, escaped, errors } = await visit('/docs');
    // Authorize with a token, as a developer pastes the one npm start prints.
    await page.locator('.btn.authorize').first().click({ timeout: 20_000 });
    const bearerForm = page.locator('.auth-container').filter({ hasText: 'bearerAuth' });
    await bearerForm.locator('input').fill((await defaultAuthorization()).slice('Bearer '.length));
    await bearerForm.locator('button.authorize').click();
    await page.locator('.auth-wrapper button.btn-done, .modal-ux button.btn-done').first().click();
    const operation = page.locator('#operations-agents-ListAgents');
    await operation.locator('.opblock-summary').first().click();
    const body = operation.locator('.opblock-body');
    await expect.poll(() => body.innerText(), { timeout: 20_000 }).toContain('Parameters');
    expect(await body.innerText()).toContain('label');
    await body.getByRole('button', { name: 'Try it out' }).click();
    // The label filter is pre-filled from its example (a label the agents have), not Swagger UI's
    // {"key": "string"} sample that matched nothing: the first try lists agents.
    expect(await body.locator('tr[data-param-name="label"] textarea').inputValue()).toContain('"team"');
    await body.getByRole('button', { name: 'Execute' }).click();
    const live = body.locator('.live-responses-table tbody .response-col_status');
    await expect.poll(() => live.first().innerText(), { timeout: 20_000 }).toContain('200');
    expect(await body.locator('.live-responses-table').innerText()).toContain('Browsable');
    expect(await page.locator('#operations-tag-tasks').innerText()).toContain('tasks');
    expect(escaped).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('/redoc: Redoc renders the operations with their schemas', async () => {
    const { page, escaped, errors } = await visit('/redoc');
    await expect.poll(() => page.locator('body').innerText(), { timeout: 20_000 }).toContain('Register an agent');
    const text = await page.locator('body').innerText();
    expect(text).toContain('Agent platform REST API');
    // Redoc upper-cases section titles with CSS, which innerText reflects.
    expect(text.toLowerCase()).toContain('request body schema');
    expect(text).toContain('/v1/agents/{id}/activate');
    expect(escaped).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('GET /graphql in a browser: GraphiQL, served locally, runs a query', async () => {
    const query = encodeURIComponent('{ agents { totalCount nodes { name } } }');
    const { page, escaped, errors } = await visit(`/graphql?query=${query}`, {
      'graphiql:headers': JSON.stringify({ authorization: await defaultAuthorization() }),
    });
    await page.locator('.graphiql-execute-button').click({ timeout: 20_000 });
    await expect.poll(() => page.locator('.graphiql-response').innerText(), { timeout: 20_000 }).toContain('Browsable');
    expect(await page.locator('.graphiql-response').innerText()).toContain('"totalCount": 1');
    expect(escaped).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('GraphiQL runs a subscription over graphql-ws, starting with the development token in its headers', async () => {
    const query = encodeURIComponent('subscription Watch { agentStatusChanged { to agent { name } } }');
    // A first visit: nothing saved, so the page asks the gateway for the development token.
    const { page, escaped, errors } = await visit(`/graphql?query=${query}`);
    await expect
      .poll(
        () =>
          page.evaluate(
            () => (globalThis as unknown as { localStorage: { getItem(key: string): string | null } }).localStorage.getItem('graphiql:tabState') ?? '',
          ),
        { timeout: 20_000 },
      )
      .toContain('Bearer ');
    await page.locator('.graphiql-execute-button').click({ timeout: 20_000 });
    // The subscription is live once its WebSocket is open; then an agent registers elsewhere.
    await expect
      .poll(
        async () => {
          await gqlOk(platform.url, `mutation { registerAgent(input: { name: "Seen in GraphiQL" }) { id } }`);
          return page.locator('.graphiql-response').innerText();
        },
        { timeout: 30_000, interval: 2_000 },
      )
      .toContain('Seen in GraphiQL');
    expect(await page.locator('.graphiql-response').innerText()).toContain('"to": "REGISTERED"');
    expect(escaped).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('/: a landing page linking GraphiQL, the REST docs and every endpoint; the same links as JSON for clients', async () => {
    const { page, escaped, errors } = await visit('/');
    const text = await page.locator('body').innerText();
    expect(text).toContain('Agent platform supergraph');
    for (const href of ['/graphql', '/docs', '/redoc', '/openapi.json']) expect(await page.locator(`a[href$="${href}"]`).count(), href).toBe(1);
    const host = new URL(base).host;
    expect(text).toContain(`ws://${host}/graphql`);
    expect(text).toContain(`http://${host}/graphql/stream`);
    expect(escaped).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
    const json = (await (await fetch(`${base}/`, { headers: { accept: 'application/json' } })).json()) as Record<string, string>;
    expect(json).toMatchObject({
      graphql: `${base}/graphql`,
      websocket: `ws://${host}/graphql`,
      sse: `${base}/graphql/stream`,
      openapi: `${base}/openapi.json`,
      rest: `${base}/v1/`,
    });
  });
});
