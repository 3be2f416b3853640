// The orchestration subgraph: tasks that agents claim under a lease, with retries, and workflow
// runs that release their steps' tasks as a DAG.
import { env, loadConfig } from '../../runtime/config.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createOrchestrationContext, type OrchestrationContext } from './context.ts';
import { migrations } from './migrations.ts';
import { resolvers } from './resolvers.ts';
import { OrchestrationStore, type OrchestrationDB } from './store.ts';

export const orchestrationSpec = {
  LEASE_SWEEP_INTERVAL_MS: env.int('how often expired task leases and timed-out attempts are swept, in milliseconds', 1000, 10),
};

export const orchestration: SubgraphDefinition<OrchestrationDB, OrchestrationContext> = {
  name: 'orchestration',
  defaultPort: 4002,
  migrations,
  outbox: true,
  create({ database, events, logger, env: source }) {
    const config = loadConfig(orchestrationSpec, source);
    const store = new OrchestrationStore({ database, bus: events, logger });
    const sweeper = createPeriodicJob({ name: 'lease sweep', intervalMs: config.LEASE_SWEEP_INTERVAL_MS, run: () => store.sweep(), logger });
    return {
      resolvers,
      createContext: (base) => createOrchestrationContext(base, store),
      start: () => sweeper.start(),
      stop: () => sweeper.stop(),
    };
  },
};
