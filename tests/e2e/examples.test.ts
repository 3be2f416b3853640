// The example agent workers (examples/) run as a newcomer would run them, against a real platform:
// the TypeScript worker registers itself, claims, reports progress, asks for input, completes or
// fails, and keeps its task through a gateway restart; the Python worker (standard library, REST)
// does its tasks with the machine's python3.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { userToken } from '../support/auth.ts';
import { gqlOk, manageProcesses, REPO_ROOT, startPlatform, type Platform } from '../support/processes.ts';
import { waitFor } from '../subscriptions/support.ts';

manageProcesses();

interface Worker {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const workers: Worker[] = [];

function startWorker(command: string, args: string[], env: Record<string, string>): Worker {
  const child = spawn(command, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const worker = { child, output: () => text, exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))) };
  workers.push(worker);
  return worker;
}

let dataDir: string;
let platform: Platform;
let base: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'e2e-examples-'));
  platform = await startPlatform({ dataDir });
  base = platform.url.replace(/\/graphql$/, '');
});

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await platform?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

beforeEach((context) => {
  context.onTestFailed(() => {
    for (const w of workers) console.error(`---- worker output ----\n${w.output()}`);
  });
});

interface TaskView {
  id: string;
  state: string;
  result: Record<string, unknown> | null;
  error: { message: string } | null;
}

async function submit(title: string, tag: string, input: Record<string, unknown>): Promise<string> {
  const { submitTask } = await gqlOk<{ submitTask: { id: string } }>(platform.url, 'mutation($i: SubmitTaskInput!) { submitTask(input: $i) { id } }', {
    i: { title, requiredSkillTags: [tag], input, retryPolicy: { maximumAttempts: 1 } },
  });
  return submitTask.id;
}

const read = async (id: string) =>
  (await gqlOk<{ task: TaskView }>(platform.url, 'query($id: ID!) { task(id: $id) { id state result error { message } } }', { id })).task;

const reaches = (id: string, state: string) =>
  waitFor(
    `task ${id} ${state}`,
    async () => {
      const task = await read(id);
      return task.state === state ? task : undefined;
    },
    30_000,
  );

describe('examples', () => {
  it('the TypeScript worker does the main job, asks for input, fails what it cannot do, and keeps its task through a gateway restart', async () => {
    const tag = `ts-${randomBytes(4).toString('hex')}`;
    const worker = startWorker(process.execPath, ['--import', 'tsx', 'examples/agent-worker/worker.ts'], {
      GATEWAY_URL: base,
      ADMIN_TOKEN: await userToken(),
      SKILL_TAG: tag,
      IDLE_MS: '200',
      LEASE_SECONDS: '60',
    });
    await waitFor('the worker registered', () => worker.output().includes('"message":"working"') || undefined, 30_000);

    const plain = await submit('plain', tag, { steps: 2, stepMs: 50 });
    const asking = await submit('asking', tag, { steps: 1, stepMs: 50, ask: 'Which quarter: fiscal or calendar?' });
    const failing = await submit('failing', tag, { steps: 1, stepMs: 50, fail: 'the document is unreadable' });

    await reaches(asking, 'INPUT_REQUIRED');
    await gqlOk(platform.url, 'mutation($id: ID!) { provideTaskInput(taskId: $id, input: { answer: "fiscal" }) { id } }', { id: asking });
    expect((await reaches(plain, 'COMPLETED')).result).toMatchObject({ steps: 2, title: 'plain' });
    expect((await reaches(asking, 'COMPLETED')).result).toMatchObject({ answer: 'fiscal' });
    expect((await reaches(failing, 'FAILED')).error?.message).toBe('the document is unreadable');

    // A slow task: the gateway restarts while the worker holds it.
    const slow = await submit('slow', tag, { steps: 4, stepMs: 600 });
    await reaches(slow, 'WORKING');
    await platform.gateway.restart();
    expect((await reaches(slow, 'COMPLETED')).result).toMatchObject({ steps: 4 });
    expect(worker.output()).toContain('platform unavailable, retrying');

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toContain('"message":"stopped"');
  });

  it('the Python worker (standard library, REST) completes and fails tasks with its own credential', async () => {
    const tag = `py-${randomBytes(4).toString('hex')}`;
    const admin = { authorization: `Bearer ${await userToken()}`, 'content-type': 'application/json' };
    const registered = await fetch(`${base}/v1/agents?issueCredential=true`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'Python worker', skills: [{ id: tag, name: tag, tags: [tag] }] }),
    });
    expect(registered.status).toBe(201);
    const agent = (await registered.json()) as { id: string; credential: { secret: string } };
    expect((await fetch(`${base}/v1/agents/${agent.id}/activate`, { method: 'POST', headers: admin })).status).toBe(200);

    const counted = await submit('count words', tag, { text: 'one two three' });
    const refused = await submit('refuse', tag, { fail: 'not my job' });
    const worker = startWorker('python3', ['examples/python/agent_worker.py', '--max-tasks', '2'], {
      GATEWAY_URL: base,
      AGENT_KEY: agent.credential.secret,
      AGENT_ID: agent.id,
      SKILL_TAG: tag,
    });
    expect(await worker.exited).toBe(0);
    expect((await read(counted)).result).toEqual({ worker: 'python', words: 3 });
    const failed = await read(refused);
    expect(failed.state).toBe('FAILED');
    expect(failed.error?.message).toBe('not my job');
  });
});
