// The orchestration subgraph: tasks that agents claim under a lease, with retries, and workflow
// runs that release their steps' tasks as a DAG.
import { env, loadConfig } from '../../runtime/config.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createAgentDirectory } from './agent-directory.ts';
import { createOrchestrationContext, type OrchestrationContext } from './context.ts';
import { AGENT_STATUS_CHANGED, type AgentStatusChangedPayload } from './domain.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { OrchestrationStore, type OrchestrationDB } from './store.ts';

export const orchestrationSpec = {
  LEASE_SWEEP_INTERVAL_MS: env.int('how often expired task leases and timed-out attempts are swept, in milliseconds', 1000, 10),
  SUBGRAPH_AGENTS_URL: env.urls(
    'GraphQL endpoint of the agents subgraph, asked about an agent at each claim; several replicas comma-separated',
    ['http', 'https'],
    ['http://127.0.0.1:4001/graphql'],
  ),
};

/** The agents subgraph's event channel (its name: runtime/outbox.ts publishes there). */
const AGENTS_CHANNEL = 'agents';

export const orchestration: SubgraphDefinition<OrchestrationDB, OrchestrationContext> = {
  name: 'orchestration',
  defaultPort: 4002,
  migrations,
  outbox: true,
  create({ database, bus, events, logger, identity, config: common, env: source }) {
    const config = loadConfig(orchestrationSpec, source);
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: common.NODE_ENV, logger });
    const store = new OrchestrationStore({ database, bus: events, logger, idempotency });
    const agents = createAgentDirectory({
      url: config.SUBGRAPH_AGENTS_URL.length > 0 ? config.SUBGRAPH_AGENTS_URL : 'http://127.0.0.1:4001/graphql',
      identity,
      logger,
    });
    const sweeper = createPeriodicJob({ name: 'lease sweep', intervalMs: config.LEASE_SWEEP_INTERVAL_MS, run: () => store.sweep(), logger });

    // A retired agent's tasks go back to SUBMITTED for another agent. Every replica gets the
    // event; the release re-checks each task under lock, so only one of them changes it.
    const onStatusChanged = (event: DomainEvent) => {
      const { agentId, to } = event.payload as Partial<AgentStatusChangedPayload>;
      if (to !== 'RETIRED' || typeof agentId !== 'string') return;
      store.releaseAgentTasks(event.tenantId, agentId).then(
        (released) => {
          if (released > 0) logger.info({ agentId, tenantId: event.tenantId, released }, 'released the tasks of a retired agent');
        },
        (err: unknown) => logger.error({ err, agentId, tenantId: event.tenantId }, 'releasing the tasks of a retired agent failed; their leases will expire'),
      );
    };
    let unsubscribe: Promise<() => Promise<void>> | undefined;

    return {
      resolvers,
      createContext: (base) => createOrchestrationContext(base, store, agents),
      start: () => {
        sweeper.start();
        pruner.start();
        // The outbox publishes each subgraph's events on a channel named after it.
        unsubscribe = bus.subscribe(AGENTS_CHANNEL, (event) => {
          if (event.type === AGENT_STATUS_CHANGED) onStatusChanged(event);
        });
        unsubscribe.catch((err: unknown) =>
          logger.error({ err }, `subscribing to the ${AGENTS_CHANNEL} events failed: retired agents' tasks wait for their leases to expire`),
        );
      },
      stop: async () => {
        await sweeper.stop();
        await pruner.stop();
        const off = await unsubscribe?.catch(() => undefined);
        await off?.();
      },
    };
  },
};
