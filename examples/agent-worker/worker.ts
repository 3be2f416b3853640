// An agent worker: the main job of the platform seen from the agent's side, written against the
// typed client (clients/typescript). It
//   1. registers itself and gets its own credential (when given an operator's ADMIN_TOKEN), or
//      works with a credential it already has (AGENT_KEY + AGENT_ID);
//   2. claims tasks with a lease, heartbeats while idle, reports progress (which renews the lease);
//   3. asks for input when a task says so, and waits for the answer (a subscription, polled as well);
//   4. completes the task, or fails it when it cannot do it;
//   5. keeps going through a gateway restart (calls are retried with backoff while it is away);
//   6. stops on SIGINT/SIGTERM after the task in hand.
//
//   ADMIN_TOKEN=$(npm run -s token) npm run example:worker          # against `npm start`
//
// What a task's input may hold (all optional): { steps: 3, stepMs: 200, ask: "a question?", fail: "why" }.
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  ActivateAgentDocument,
  ClaimTaskDocument,
  CompleteTaskDocument,
  createPlatformClient,
  FailTaskDocument,
  GetTaskDocument,
  type PlatformClient,
  PlatformRequestError,
  RecordHeartbeatDocument,
  RegisterAgentDocument,
  ReportTaskProgressDocument,
  RequestTaskInputDocument,
  TaskUpdatesDocument,
} from '../../clients/typescript/index.ts';

const config = {
  url: process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000',
  adminToken: process.env.ADMIN_TOKEN,
  agentKey: process.env.AGENT_KEY,
  agentId: process.env.AGENT_ID,
  name: process.env.AGENT_NAME ?? 'Example worker',
  skillTag: process.env.SKILL_TAG ?? 'example',
  leaseSeconds: Number(process.env.LEASE_SECONDS ?? 30),
  idleMs: Number(process.env.IDLE_MS ?? 500),
};

const log = (message: string, fields: Record<string, unknown> = {}) => console.log(JSON.stringify({ at: new Date().toISOString(), message, ...fields }));

/** Codes that mean "not now", not "no": the gateway or a subgraph is away or busy. */
const TRANSIENT = new Set(['SUBGRAPH_UNAVAILABLE', 'DEPENDENCY_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'RATE_LIMITED', 'CIRCUIT_OPEN', 'BULKHEAD_FULL']);

function transient(err: unknown): boolean {
  if (err instanceof PlatformRequestError) return TRANSIENT.has(err.code ?? '') || err.status >= 502 || (err.status === 0 && err.errors.length === 0);
  // fetch failed: connection refused or reset while the gateway restarts.
  return err instanceof TypeError;
}

/** Runs a call until it gets an answer, backing off while the platform is away. */
async function retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!transient(err)) throw err;
      const delay = Math.min(5_000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
      log('platform unavailable, retrying', { what, attempt, delayMs: Math.round(delay), error: (err as Error).message });
      await sleep(delay);
    }
  }
}

/** Registers the agent with an operator's token, activates it and returns its own credential. */
async function register(adminToken: string): Promise<{ id: string; key: string }> {
  const operator = createPlatformClient({ url: config.url, token: adminToken });
  const { registerAgent } = await retrying('register', () =>
    operator.request(RegisterAgentDocument, {
      input: { name: config.name, skills: [{ id: config.skillTag, name: config.skillTag, tags: [config.skillTag] }] },
      issueCredential: true,
    }),
  );
  const key = registerAgent.credential?.secret;
  if (!key) throw new Error('the platform issued no credential');
  await retrying('activate', () => operator.request(ActivateAgentDocument, { id: registerAgent.id }));
  log('registered', { agentId: registerAgent.id, keyPrefix: registerAgent.credential?.prefix });
  return { id: registerAgent.id, key };
}

type Task = NonNullable<Awaited<ReturnType<typeof claim>>>;

function claim(client: PlatformClient) {
  return retrying('claim', () => client.request(ClaimTaskDocument, { skillTags: [config.skillTag], leaseSeconds: config.leaseSeconds })).then(
    (r) => r.claimTask,
  );
}

/** Waits until the task has its input again (WORKING), by subscription and, in case it drops, by polling. */
async function waitForInput(client: PlatformClient, taskId: string): Promise<Record<string, unknown>> {
  let answered: Record<string, unknown> | undefined;
  const stop = client.subscribe(
    TaskUpdatesDocument,
    { taskId },
    {
      next: ({ taskUpdated }) => {
        if (taskUpdated.to === 'WORKING') answered = (taskUpdated.task.input ?? {}) as Record<string, unknown>;
      },
    },
  );
  try {
    for (let polls = 0; answered === undefined; polls++) {
      await sleep(250);
      if (polls % 8 === 7) {
        const { task } = await retrying('read task', () => client.request(GetTaskDocument, { id: taskId }));
        if (task?.state === 'WORKING') answered = (task.input ?? {}) as Record<string, unknown>;
        if (task && task.state !== 'INPUT_REQUIRED' && task.state !== 'WORKING') throw new Error(`task is ${task.state} while waiting for input`);
      }
    }
    return answered;
  } finally {
    stop();
  }
}

async function work(client: PlatformClient, task: Task): Promise<void> {
  const input = (task.input ?? {}) as { steps?: number; stepMs?: number; ask?: string; fail?: string };
  log('claimed', { taskId: task.id, title: task.title });
  const steps = input.steps ?? 3;
  for (let step = 1; step <= steps; step++) {
    await sleep(input.stepMs ?? 100);
    const percent = Math.round((step / (steps + 1)) * 100);
    await retrying('progress', () =>
      client.request(ReportTaskProgressDocument, { id: task.id, percent, message: `step ${step} of ${steps}`, leaseSeconds: config.leaseSeconds }),
    );
  }
  if (input.fail) {
    await retrying('fail', () =>
      client.request(FailTaskDocument, { id: task.id, error: { message: input.fail ?? 'failed', type: 'ExampleFailure' }, retryable: false }),
    );
    log('failed', { taskId: task.id, reason: input.fail });
    return;
  }
  let answer: unknown;
  if (input.ask) {
    await retrying('ask', () => client.request(RequestTaskInputDocument, { id: task.id, message: input.ask ?? '' }));
    log('asked for input', { taskId: task.id, question: input.ask });
    answer = (await waitForInput(client, task.id)).answer;
    log('got input', { taskId: task.id, answer });
  }
  const result = { worker: config.name, steps, ...(answer !== undefined ? { answer } : {}), title: task.title };
  await retrying('complete', () => client.request(CompleteTaskDocument, { id: task.id, result }));
  log('completed', { taskId: task.id });
}

async function main(): Promise<void> {
  let agentId = config.agentId;
  let key = config.agentKey;
  if (!key || !agentId) {
    if (!config.adminToken) throw new Error('set AGENT_KEY and AGENT_ID (an agent credential), or ADMIN_TOKEN to register one (npm run -s token)');
    ({ id: agentId, key } = await register(config.adminToken));
  }
  const client = createPlatformClient({ url: config.url, apiKey: key, webSocketImpl: WebSocket });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log('stopping after the task in hand', { signal });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  log('working', { agentId, skillTag: config.skillTag, gateway: config.url });
  let lastHeartbeat = 0;
  while (!stopping) {
    if (Date.now() - lastHeartbeat > 5_000) {
      const id = agentId;
      await retrying('heartbeat', () => client.request(RecordHeartbeatDocument, { id }));
      lastHeartbeat = Date.now();
    }
    const task = await claim(client);
    if (!task) {
      await sleep(config.idleMs);
      continue;
    }
    try {
      await work(client, task);
    } catch (err) {
      // Not retried here: the lease runs out and the platform retries the task per its policy.
      log('task abandoned', { taskId: task.id, error: err instanceof Error ? err.message : String(err) });
    }
  }
  await client.dispose();
  log('stopped');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
