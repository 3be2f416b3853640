// `npm start`: every subgraph and the gateway in one process on embedded defaults (SQLite files
// under DATA_DIR, in-process event bus), each subgraph on its own port and reached by the gateway
// over HTTP exactly as separate services would be. Seeds demo data on first start (SEED=false
// turns that off) and prints the URLs, a development token (admin of the demo tenant) and a demo
// agent's credential with requests made as that agent; in production it prints no token and seeds
// nothing (tokens come from the identity provider).
import { commonSpec, ConfigError, env, loadConfig } from '../runtime/config.ts';
import { closeSqliteNow } from '../runtime/db.ts';
import { createEventBus } from '../runtime/events.ts';
import { createLogger } from '../runtime/logger.ts';
import { stopOnSignals } from '../runtime/shutdown-signals.ts';
import type { RunningSubgraph } from '../runtime/subgraph.ts';
import { startGateway } from '../gateway/server.ts';
import { SSE_PATH } from '../gateway/subscriptions/index.ts';
import { subgraphs } from '../subgraphs/index.ts';
import { EXAMPLE_AGENT, seedDemoData, type DemoAgent } from './seed.ts';
import { mintDevToken } from './token.ts';

// One process prints every service's logs; warnings and errors only by default so the banner
// stays readable. LOG_LEVEL=info shows the per-request access log.
const source: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL || 'warn' };
const logger = createLogger('start', source.LOG_LEVEL || 'warn');

// Subgraphs that others call start first, and each is told where the ones before it listen (the
// agents subgraph has governance mint agent credentials): the ports may be anything.
const START_ORDER = ['governance', 'agents'];
const startOrder = Object.values(subgraphs).sort((a, b) => rank(a.name) - rank(b.name));
function rank(name: string): number {
  const i = START_ORDER.indexOf(name);
  return i < 0 ? START_ORDER.length : i;
}

const urlVariable = (s: RunningSubgraph) => `SUBGRAPH_${s.name.toUpperCase()}_URL`;

/** Requests made as a demo agent, with its credential header: ready to paste. */
function agentExamples(url: string, agent: DemoAgent, header: string): string[] {
  const curl = (query: string) => [
    `  curl -s ${url} -H 'content-type: application/json' \\`,
    `       -H '${header}' \\`,
    `       -d '{"query":"${query.replace(/"/g, '\\"')}"}'`,
  ];
  return [
    `  as that agent, a heartbeat (an agent changes only its own record):`,
    ...curl(`mutation { recordHeartbeat(id: "${agent.id}") { name health lastHeartbeatAt } }`),
    `  and claiming its next task (no agentId: the credential says which agent):`,
    ...curl(`mutation { claimTask(skillTags: [${EXAMPLE_AGENT.skillTags.map((t) => `"${t}"`).join(', ')}]) { id title input } }`),
  ];
}

async function main(): Promise<void> {
  const { SEED } = loadConfig({ SEED: env.bool('seed demo data on first start', true) }, source);
  const running: RunningSubgraph[] = [];
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  // One bus for every subgraph of this process: without Redis, orchestration still hears the
  // agents subgraph's events (a retired agent's tasks are released).
  const { REDIS_URL, EVENT_CHANNEL_PREFIX } = loadConfig(commonSpec, source);
  const bus = createEventBus({ redisUrl: REDIS_URL, channelPrefix: EVENT_CHANNEL_PREFIX, logger });
  const stopAll = async () => {
    await gateway?.stop();
    await Promise.all(running.map((s) => s.stop()));
    await bus.close();
  };
  stopOnSignals(logger, stopAll, { beforeForcedExit: closeSqliteNow });
  const urls: Record<string, string> = {};
  try {
    for (const def of startOrder) {
      running.push(await def.start({ ...urls, ...source }, { bus }));
      urls[urlVariable(running.at(-1)!)] = running.at(-1)!.url;
    }
    gateway = await startGateway({ ...urls, ...source });
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }

  const production = source.NODE_ENV === 'production';
  // Nothing mints tokens in production: mintDevToken refuses, and nothing is seeded without one.
  const token = production ? undefined : await mintDevToken({}, source);
  let seedLine = production ? 'demo data: off (NODE_ENV=production)' : 'demo data: off (SEED=false)';
  let agentLines: string[] = [];
  if (SEED && token) {
    const seed = await seedDemoData(gateway.url, token);
    seedLine = seed.seeded
      ? `demo data: seeded ${seed.agents} agents, ${seed.tasks} tasks, ${seed.workflowRuns} workflow run, ${seed.memories} memories`
      : `demo data: already present (${seed.agents} agents), not seeded again`;
    const agent = seed.exampleAgent;
    if (agent?.apiKey) {
      agentLines = [
        '',
        `  agent credential of the demo agent "${agent.name}" (${agent.id}), shown only now (rotateAgentCredential replaces it):`,
        `  ${agent.apiKey}`,
        ...agentExamples(gateway.url, agent, `x-api-key: ${agent.apiKey}`),
      ];
    } else if (agent) {
      // Its key was shown by the start that seeded it; an agent token acts as it just the same.
      const agentToken = await mintDevToken({ agent: agent.id }, source);
      agentLines = [
        '',
        `  the demo agent "${agent.name}" (${agent.id}): its key was printed when the demo data was seeded; an agent token (npm run token -- --agent ${agent.id}) acts as it too:`,
        ...agentExamples(gateway.url, agent, `authorization: Bearer ${agentToken}`),
      ];
    }
  }

  const base = gateway.url.replace(/\/graphql$/, '');
  const lines = [
    '',
    'Agent platform supergraph is up.',
    '',
    `  GraphQL (gateway)   ${gateway.url}   (GraphiQL in a browser${production ? ' unless GRAPHIQL=false' : ''})`,
    `  subscriptions       ${gateway.url.replace(/^http/, 'ws')} (graphql-ws)   ${base}${SSE_PATH} (SSE)`,
    `  REST                ${base}/v1/…   docs: ${base}/docs (Swagger UI), ${base}/redoc, ${base}/openapi.json`,
    `  start page          ${base}/`,
    ...running.map((s) => `  subgraph ${s.name.padEnd(14)} ${s.url}`),
    `  health              ${base}/healthz   ready: ${base}/readyz`,
    '',
    ...running.map((s) => `  data ${s.name.padEnd(18)} ${s.database.location}`),
    `  events              ${running[0]?.bus.kind ?? 'in-process'} bus`,
    `  ${seedLine}`,
    '',
    ...(token
      ? [
          `  development token (admin of the demo tenant "default", every scope, 12 h; more: npm run token -- --help):`,
          `  ${token}`,
          '',
          `  try: curl -s ${gateway.url} -H 'content-type: application/json' \\`,
          `         -H 'authorization: Bearer ${token}' \\`,
          `         -d '{"query":"{ agents { nodes { name status health tasks { nodes { title state } } } } }"}'`,
          ...agentLines,
        ]
      : ['  requests need a token from your identity provider (Authorization: Bearer …) or an API key (X-API-Key)']),
    '',
    'Ctrl+C stops everything.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : `start failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
