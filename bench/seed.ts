// The benchmark's data set, written through the subgraphs' own store classes into fresh SQLite
// files before the subgraphs start: the rows are exactly what the API would have written, in
// seconds instead of the minutes thousands of mutations through HTTP would take. The content is
// fixed (names, skills, which agent holds which tasks); only the generated ids differ per run.
import { sql } from 'kysely';
import { DEFAULT_TENANT } from '../runtime/context.ts';
import { openDatabase, type Database } from '../runtime/db.ts';
import { createEventBus } from '../runtime/events.ts';
import { createLogger } from '../runtime/logger.ts';
import { normaliseRegistration } from '../subgraphs/agents/domain.ts';
import { migrations as agentMigrations } from '../subgraphs/agents/migrations.ts';
import { AgentStore, type AgentsDB } from '../subgraphs/agents/store.ts';
import { validateTaskSpec, type Actor } from '../subgraphs/orchestration/domain.ts';
import { migrations as orchestrationMigrations } from '../subgraphs/orchestration/migrations.ts';
import { OrchestrationStore, type OrchestrationDB } from '../subgraphs/orchestration/store.ts';

export interface SeedOptions {
  dataDir: string;
  agents: number;
  tasks: number;
  /** Tasks each agent claims (ASSIGNED, held for an hour), so the join has data. */
  claimedPerAgent: number;
}

export interface SeededData {
  /** In creation order. */
  agentIds: string[];
  tasks: number;
  claimed: number;
  seconds: number;
}

const TEAMS = ['research', 'writing', 'review', 'ops', 'support'];
const pad = (n: number) => String(n).padStart(4, '0');
/** Who the seeded tasks' history names. */
const SEEDER: Actor = { subject: 'bench-seed', agentId: null };

// Durability is the subgraphs' business once they serve; a seed that fails is simply redone.
async function fastWrites<DB>(database: Database<DB>): Promise<void> {
  await sql`PRAGMA synchronous = OFF`.execute(database.db);
}

export async function seedBenchData(options: SeedOptions): Promise<SeededData> {
  const started = performance.now();
  const logger = createLogger('bench-seed', 'warn');
  const bus = createEventBus({ channelPrefix: 'bench', logger });
  const agentsDb = await openDatabase<AgentsDB>({ name: 'agents', dataDir: options.dataDir, migrations: agentMigrations, logger });
  const orchestrationDb = await openDatabase<OrchestrationDB>({ name: 'orchestration', dataDir: options.dataDir, migrations: orchestrationMigrations, logger });
  try {
    await fastWrites(agentsDb);
    await fastWrites(orchestrationDb);
    const agentStore = new AgentStore(agentsDb, bus, logger);
    const taskStore = new OrchestrationStore({ database: orchestrationDb, bus, logger });

    const agentIds: string[] = [];
    for (let i = 0; i < options.agents; i++) {
      const team = TEAMS[i % TEAMS.length] ?? 'ops';
      const draft = normaliseRegistration({
        name: `bench-agent-${pad(i)}`,
        description: `Benchmark agent ${i} of the ${team} team.`,
        agentVersion: `1.${i % 10}.0`,
        endpointUrl: `https://agents.example.com/bench/${i}`,
        provider: { organization: 'Bench Labs', url: 'https://example.com' },
        skills: [
          { id: 'own', name: `Own work ${i}`, tags: [`bench-${pad(i)}`, team] },
          { id: 'common', name: 'Common work', tags: ['bench'], examples: ['Do the usual'] },
        ],
        labels: [
          { key: 'team', value: team },
          { key: 'tier', value: i % 3 === 0 ? 'gold' : 'standard' },
        ],
        heartbeatIntervalSeconds: 30,
      });
      const row = await agentStore.register(DEFAULT_TENANT, draft);
      await agentStore.changeStatus(DEFAULT_TENANT, row.id, 'activate');
      agentIds.push(row.id);
    }

    // Task t belongs to agent t mod N: every agent gets the same number of tasks, and its own tag
    // makes sure only that agent can claim them. Each agent claims its tasks right after they are
    // submitted: a claim scans the SUBMITTED backlog, so claiming with 5,000 tasks waiting would
    // take minutes (see bench/README.md). The unclaimed rest is submitted afterwards.
    const submit = (t: number) => {
      const owner = t % options.agents;
      return taskStore.submitTask(
        DEFAULT_TENANT,
        SEEDER,
        validateTaskSpec({
          title: `bench-task-${pad(t)}`,
          description: `Task ${t} for agent ${owner}.`,
          input: { n: t, owner },
          requiredSkillTags: [`bench-${pad(owner)}`],
          priority: t % 7,
          // No timeout or expiry during a benchmark: held tasks stay ASSIGNED.
          timeoutSeconds: 86_400,
        }),
      );
    };
    const claimedTasks = Math.min(options.tasks, options.claimedPerAgent * options.agents);
    let claimed = 0;
    for (let i = 0; i < agentIds.length; i++) {
      const own: number[] = [];
      for (let t = i; t < claimedTasks; t += options.agents) own.push(t);
      for (const t of own) await submit(t);
      for (let c = 0; c < own.length; c++) {
        const task = await taskStore.claimTask(DEFAULT_TENANT, { ...SEEDER, agentId: agentIds[i] as string }, [`bench-${pad(i)}`], 3600);
        if (task) claimed += 1;
      }
    }
    for (let t = claimedTasks; t < options.tasks; t++) await submit(t);
    return { agentIds, tasks: options.tasks, claimed, seconds: (performance.now() - started) / 1000 };
  } finally {
    await agentsDb.close();
    await orchestrationDb.close();
    await bus.close();
  }
}
