// The collaboration subgraph: channels where agents and people converse (direct, group, and one
// per task or workflow run), messages in A2A-style parts with threads, edits and read markers,
// and who is present, live over subscriptions.
import { env, loadConfig } from '../../runtime/config.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createCollaborationContext, TypingThrottle, type CollaborationContext } from './context.ts';
import { migrations } from './migrations.ts';
import { PresenceTracker } from './presence.ts';
import { resolvers } from './resolvers.ts';
import { CollaborationStore } from './store.ts';
import type { CollaborationDB } from './store/tables.ts';
import { createSubjectDirectory } from './subjects.ts';

const AGENTS_CHANNEL = 'agents';
/** The agents subgraph's event of a recorded heartbeat (subgraphs/agents/domain.ts). */
const AGENT_HEARTBEAT = 'AgentHeartbeat';

export const collaborationSpec = {
  COLLABORATION_MESSAGE_MAX_BYTES: env.int("largest message: bytes of its parts' JSON (MESSAGE_TOO_LARGE beyond)", 65_536, 256),
  COLLABORATION_MESSAGES_PER_MINUTE: env.int('messages one participant may send per minute across the tenant (RATE_LIMITED beyond)', 120, 1),
  COLLABORATION_MAX_PARTICIPANTS: env.int('participants one channel may have (CHANNEL_FULL beyond)', 1000, 2),
  COLLABORATION_PRESENCE_TTL_MS: env.int(
    "how long a live subscription's presence lasts without its replica refreshing it (every third of this): a replica that dies takes its participants offline after at most this plus the sweep interval",
    30_000,
    300,
  ),
  COLLABORATION_PRESENCE_SWEEP_INTERVAL_MS: env.int('how often presence is refreshed and expired connections are taken offline, in milliseconds', 5_000, 50),
  SUBGRAPH_ORCHESTRATION_URL: env.urls(
    'GraphQL endpoint of the orchestration subgraph, asked whether a task or workflow run exists when its channel is first opened (its replicas, comma-separated)',
    ['http', 'https'],
    'http://127.0.0.1:4002/graphql',
  ),
  COLLABORATION_HEARTBEAT_TTL_MS: env.int('how long one heartbeat mutation keeps its sender present, in milliseconds', 60_000, 1000),
};

export const collaboration: SubgraphDefinition<CollaborationDB, CollaborationContext> = {
  name: 'collaboration',
  defaultPort: 4008,
  migrations,
  outbox: true,
  create({ database, bus, events, logger, config, identity, env: source }) {
    const c = loadConfig(collaborationSpec, source);
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: config.NODE_ENV, logger });
    const store = new CollaborationStore(
      database,
      events,
      logger,
      {
        messageMaxBytes: c.COLLABORATION_MESSAGE_MAX_BYTES,
        messagesPerMinute: c.COLLABORATION_MESSAGES_PER_MINUTE,
        participantsPerChannel: c.COLLABORATION_MAX_PARTICIPANTS,
      },
      Date.now,
      idempotency,
    );
    const presence = new PresenceTracker(store, { ttlMs: c.COLLABORATION_PRESENCE_TTL_MS, heartbeatTtlMs: c.COLLABORATION_HEARTBEAT_TTL_MS }, logger);
    const typing = new TypingThrottle(2000);
    const subjects = createSubjectDirectory({ url: c.SUBGRAPH_ORCHESTRATION_URL, identity, logger });
    // Refreshing more often than a third of the TTL keeps a live replica's connections from ever expiring.
    const maintenance = createPeriodicJob({
      name: 'presence maintenance',
      intervalMs: Math.min(c.COLLABORATION_PRESENCE_SWEEP_INTERVAL_MS, Math.floor(c.COLLABORATION_PRESENCE_TTL_MS / 3)),
      run: () => presence.maintain(),
      logger,
    });
    // An agent's heartbeat to the agents subgraph (recordHeartbeat) counts as a presence heartbeat
    // here: the outbox publishes agents' events on the channel named after it.
    const onAgentEvent = (event: DomainEvent) => {
      if (event.type !== AGENT_HEARTBEAT) return;
      const agentId = (event.payload as { agentId?: string }).agentId ?? event.subjectId;
      presence
        .heartbeat(event.tenantId, `agent:${agentId}`)
        .catch((err: unknown) => logger.warn({ err, agentId }, 'recording an agent heartbeat as presence failed'));
    };
    let unsubscribe: Promise<() => Promise<void>> | undefined;
    return {
      resolvers,
      createContext: (base) => createCollaborationContext(base, store, presence, typing, subjects),
      start: () => {
        pruner.start();
        maintenance.start();
        unsubscribe = bus.subscribe(AGENTS_CHANNEL, onAgentEvent);
        unsubscribe.catch((err: unknown) =>
          logger.error(
            { err },
            `subscribing to the ${AGENTS_CHANNEL} events failed: agents are present only through their subscriptions and heartbeat mutations`,
          ),
        );
      },
      stop: async () => {
        const off = await unsubscribe?.catch(() => undefined);
        await off?.();
        await maintenance.stop();
        await presence.stop();
        await pruner.stop();
      },
    };
  },
};
