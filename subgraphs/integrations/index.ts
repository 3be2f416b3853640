// The integrations subgraph: outbound webhooks (Standard Webhooks, from a durable queue fed by the
// platform's events after commit), inbound webhooks from GitHub, GitLab and Standard Webhooks
// senders, and triggers that act on events (a task, a workflow run, a Slack message, a delivery).
import { env, loadConfig } from '../../runtime/config.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import type { Outbox } from '../../runtime/outbox.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import { createServiceClient } from '../../runtime/service-client.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createIntegrationsContext, type IntegrationsContext } from './context.ts';
import { DeliveryWorker } from './delivery.ts';
import { allowedNetworks, DEFAULT_RETRY_SCHEDULE_MS, EVENT_SOURCES } from './domain.ts';
import { EventFeed, localSource, remoteSource } from './feed.ts';
import { inboundRoute } from './inbound.ts';
import { registerIntegrationsMetrics, type IntegrationsMetrics } from './metrics.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { SafeSender } from './sender.ts';
import { IntegrationsStore, type IntegrationsDB } from './store.ts';
import { TriggerRunner } from './triggers.ts';

function msList(doc: string, def: readonly number[]) {
  return {
    doc,
    default: [...def],
    parse(raw: string): number[] {
      const parts = raw.split(',').map((p) => p.trim());
      if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) throw new Error(`expected milliseconds, comma-separated, got "${raw}"`);
      return parts.map(Number);
    },
  };
}

function cidrList(doc: string) {
  return {
    doc,
    default: [] as string[],
    parse(raw: string): string[] {
      const list = raw
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p !== '');
      allowedNetworks(list);
      return list;
    },
  };
}

export const integrationsSpec = {
  INTEGRATIONS_ALLOWED_NETWORKS: cidrList(
    'networks (CIDR, comma-separated, e.g. 127.0.0.0/8,::1/128) webhooks and Slack posts may reach although private, loopback or link-local; none by default',
  ),
  INTEGRATIONS_RETRY_SCHEDULE_MS: msList(
    'delays before each retry of a failed webhook delivery, in milliseconds, comma-separated (±20 % jitter); then it is dead-lettered',
    DEFAULT_RETRY_SCHEDULE_MS,
  ),
  INTEGRATIONS_DISABLE_AFTER_MS: env.int('an endpoint whose deliveries failed this long (ms) is disabled when one of them is dead-lettered', 432_000_000, 0),
  INTEGRATIONS_DELIVERY_TIMEOUT_MS: env.int('longest a webhook delivery (connect, send, answer) may take, in milliseconds', 10_000, 1),
  INTEGRATIONS_RESPONSE_MAX_BYTES: env.int('most bytes of an endpoint’s answer read before the connection is dropped', 65_536, 1024),
  INTEGRATIONS_DELIVERY_CONCURRENCY: env.int('webhook deliveries in flight at once per process', 64, 1),
  INTEGRATIONS_POLL_INTERVAL_MS: env.int(
    'how often the event feed, the delivery queue and the trigger runs are looked at when nothing woke them, in milliseconds',
    1000,
    10,
  ),
  INTEGRATIONS_HISTORY_RETENTION_SECONDS: env.int(
    'how long finished deliveries (with their attempts), finished trigger runs and received events are kept, in seconds',
    2_592_000,
    60,
  ),
  INTEGRATIONS_INBOUND_REPLAY_WINDOW_SECONDS: env.int('how long inbound delivery ids are remembered to refuse replays, in seconds', 604_800, 60),
  SUBGRAPH_AGENTS_URL: env.urls(
    'GraphQL endpoint of the agents subgraph (its event log is read beside it)',
    ['http', 'https'],
    'http://127.0.0.1:4001/graphql',
  ),
  SUBGRAPH_ORCHESTRATION_URL: env.urls(
    'GraphQL endpoint of the orchestration subgraph (events; trigger actions submit tasks and start runs there)',
    ['http', 'https'],
    'http://127.0.0.1:4002/graphql',
  ),
  SUBGRAPH_MEMORY_URL: env.urls('GraphQL endpoint of the memory subgraph (its event log)', ['http', 'https'], 'http://127.0.0.1:4004/graphql'),
  SUBGRAPH_GOVERNANCE_URL: env.urls(
    'GraphQL endpoint of the governance subgraph (its event log: API keys)',
    ['http', 'https'],
    'http://127.0.0.1:4003/graphql',
  ),
};

export const integrations: SubgraphDefinition<IntegrationsDB, IntegrationsContext> = {
  name: 'integrations',
  defaultPort: 4006,
  migrations,
  outbox: true,
  create({ database, bus, events, logger, identity, config: common, env: source }) {
    const config = loadConfig(integrationsSpec, source);
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: common.NODE_ENV, logger });
    const store = new IntegrationsStore(database, events, logger, Date.now, idempotency);
    let metrics: IntegrationsMetrics | undefined;
    const sender = new SafeSender({
      timeoutMs: config.INTEGRATIONS_DELIVERY_TIMEOUT_MS,
      maxResponseBytes: config.INTEGRATIONS_RESPONSE_MAX_BYTES,
      allowed: allowedNetworks(config.INTEGRATIONS_ALLOWED_NETWORKS),
      connections: config.INTEGRATIONS_DELIVERY_CONCURRENCY,
    });
    const deliveries = new DeliveryWorker({
      store,
      sender,
      logger,
      retryScheduleMs: config.INTEGRATIONS_RETRY_SCHEDULE_MS,
      disableAfterMs: config.INTEGRATIONS_DISABLE_AFTER_MS,
      concurrency: config.INTEGRATIONS_DELIVERY_CONCURRENCY,
      leaseMs: config.INTEGRATIONS_DELIVERY_TIMEOUT_MS + 5_000,
      pollMs: config.INTEGRATIONS_POLL_INTERVAL_MS,
      onAttempt: (delivery, latencyMs) =>
        metrics?.attempted(delivery.status === 'SUCCEEDED' ? 'succeeded' : delivery.status === 'DEAD' ? 'dead' : 'retry', latencyMs),
    });
    const orchestration = createServiceClient({ from: 'integrations', to: 'orchestration', url: config.SUBGRAPH_ORCHESTRATION_URL, identity, logger });
    const triggers = new TriggerRunner({
      store,
      orchestration,
      sender,
      logger,
      pollMs: config.INTEGRATIONS_POLL_INTERVAL_MS,
      onQueued: () => deliveries.kick(),
    });
    const urls: Record<string, string | undefined> = {
      agents: config.SUBGRAPH_AGENTS_URL[0],
      orchestration: config.SUBGRAPH_ORCHESTRATION_URL[0],
      memory: config.SUBGRAPH_MEMORY_URL[0],
      governance: config.SUBGRAPH_GOVERNANCE_URL[0],
    };
    // With outbox: true, `events` is this subgraph's outbox: its own event log.
    const own = events as Outbox;
    const sources = EVENT_SOURCES.map((name) => (name === 'integrations' ? localSource(name, own) : remoteSource(name, urls[name] as string, identity)));
    const ownSource = sources.find((s) => s.name === 'integrations') as (typeof sources)[number];
    const feed = new EventFeed({
      store,
      sources,
      bus,
      logger,
      pollMs: config.INTEGRATIONS_POLL_INTERVAL_MS,
      onQueued: ({ deliveries: d, runs }) => {
        if (d > 0) deliveries.kick();
        if (runs > 0) triggers.kick();
      },
    });
    const receiptPruner = createPeriodicJob({
      name: 'integrations history prune',
      intervalMs: 3_600_000,
      run: async () => {
        await store.pruneReceipts(config.INTEGRATIONS_INBOUND_REPLAY_WINDOW_SECONDS * 1000);
        let pruned = 0;
        for (;;) {
          const n = await store.pruneHistory(config.INTEGRATIONS_HISTORY_RETENTION_SECONDS * 1000);
          pruned += n;
          if (n < 500) break;
        }
        // PostgreSQL: a run RUNNING this long belongs to a replica that died mid-action.
        if (database.dialect === 'postgres') await store.failInterruptedRuns(3_600_000);
        return pruned;
      },
      logger,
    });
    return {
      resolvers,
      createContext: (base) => createIntegrationsContext(base, store, feed, deliveries),
      registerMetrics: (registry) => {
        metrics = registerIntegrationsMetrics(registry, database);
      },
      routes: [inboundRoute({ store, logger, maxBodyBytes: common.MAX_BODY_BYTES, onReceived: (tenantId) => void feed.pull(ownSource, tenantId) })],
      start: () => {
        void (async () => {
          // One process per SQLite file: holds and runs a dead process left are void.
          if (database.dialect === 'sqlite') {
            await store.releaseLocks();
            const failed = await store.failInterruptedRuns();
            if (failed > 0) logger.warn({ runs: failed }, 'trigger runs interrupted by the last stop were marked FAILED (never run twice)');
          }
          feed.start();
          deliveries.start();
          triggers.start();
        })().catch((err: unknown) => logger.error({ err }, 'starting the integrations workers failed'));
        pruner.start();
        receiptPruner.start();
      },
      stop: async () => {
        await feed.stop();
        await triggers.stop();
        await deliveries.stop();
        await sender.close();
        await receiptPruner.stop();
        await pruner.stop();
      },
    };
  },
};
