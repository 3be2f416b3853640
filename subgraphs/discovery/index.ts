// The discovery subgraph: A2A Agent Cards and a DUADP node for the platform's agents, capability
// matching, a registry of the services agents use (with TTL heartbeats or probes), and peers whose
// public agents are pulled into a remote catalog.
import { env, loadConfig } from '../../runtime/config.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { createIdempotency } from '../../runtime/idempotency.ts';
import { createPeriodicJob } from '../../runtime/periodic-job.ts';
import type { SubgraphDefinition } from '../../runtime/subgraph.ts';
import { createAgentSource, type AgentSource } from './agent-source.ts';
import { createCardSigner, type CardSigner } from './cards.ts';
import { checkService, inParallel } from './checks.ts';
import { createDiscoveryContext, type DiscoveryContext, type DiscoveryServices } from './context.ts';
import { AGENT_EVENTS, TASK_STATE_CHANGED } from './domain.ts';
import { migrations } from './migrations.ts';
import { pullPeer } from './peers.ts';
import { resolvers } from './resolvers.ts';
import { DiscoveryStore, type DiscoveryDB, type PeerRow } from './store.ts';
import type { Logger } from '../../runtime/logger.ts';

export const discoverySpec = {
  DISCOVERY_PUBLIC_URL: env.url(
    'the gateway URL clients reach, used in cards, the DUADP descriptor and WebFinger links',
    ['http', 'https'],
    'http://127.0.0.1:4000',
  ),
  DISCOVERY_NODE_NAME: env.string('the name this node gives itself in its DUADP descriptor', 'agent-platform'),
  DISCOVERY_SIGNING_KEY: env.optionalString('a private JWK (EC P-256 or Ed25519, JSON) Agent Cards are signed with (JWS); unset: cards are unsigned'),
  DISCOVERY_CHECK_INTERVAL_MS: env.int('how often due service checks (probes, TTLs) and peer pulls are looked for, in milliseconds', 1000, 10),
  DISCOVERY_PEER_TIMEOUT_MS: env.int('longest wait for one HTTP request to a peer, in milliseconds', 5000, 10),
  DISCOVERY_PROFILE_REFRESH_SECONDS: env.int('agents whose copy is older than this are read again from the agents subgraph, in seconds', 300, 1),
  DISCOVERY_MATCH_LIVE_CACHE_MS: env.int('how long the heartbeats and task counts of a tenant are reused between matches, in milliseconds', 1000, 0),
  SUBGRAPH_AGENTS_URL: env.urls(
    'GraphQL endpoint of the agents subgraph, read when an agent changes (its replicas, comma-separated)',
    ['http', 'https'],
    'http://127.0.0.1:4001/graphql',
  ),
};

/** The channels the outbox publishes the agents and orchestration subgraphs' events on (their names). */
const AGENTS_CHANNEL = 'agents';
const ORCHESTRATION_CHANNEL = 'orchestration';

export const discovery: SubgraphDefinition<DiscoveryDB, DiscoveryContext> = {
  name: 'discovery',
  defaultPort: 4005,
  migrations,
  outbox: true,
  create({ database, bus, events, logger, identity, config: common, env: source }) {
    const config = loadConfig(discoverySpec, source);
    const { idempotency, pruner } = createIdempotency({ db: database.db, env: source, nodeEnv: common.NODE_ENV, logger });
    const store = new DiscoveryStore(database, events, logger, Date.now, idempotency, config.DISCOVERY_MATCH_LIVE_CACHE_MS);
    const agents = createAgentSource({ url: config.SUBGRAPH_AGENTS_URL, identity, logger });
    let signer: CardSigner | null = null;
    const signerReady = config.DISCOVERY_SIGNING_KEY ? createCardSigner(config.DISCOVERY_SIGNING_KEY).then((s) => (signer = s)) : Promise.resolve(null);
    signerReady.catch((err: unknown) => logger.error({ err }, 'DISCOVERY_SIGNING_KEY is unusable: cards are served unsigned'));

    const pull = async (peer: PeerRow): Promise<PeerRow> => {
      try {
        const found = await pullPeer(peer, config.DISCOVERY_PEER_TIMEOUT_MS);
        return await store.recordPullSuccess(peer, found);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        logger.warn({ peerId: peer.id, url: peer.url, err: message }, 'pulling a peer failed; backing off');
        return store.recordPullFailure(peer, message);
      }
    };

    const services: DiscoveryServices = {
      store,
      agents,
      get signer() {
        return signer;
      },
      publicUrl: (config.DISCOVERY_PUBLIC_URL ?? 'http://127.0.0.1:4000').replace(/\/+$/, ''),
      nodeName: config.DISCOVERY_NODE_NAME,
      pull,
    };

    const checker = createPeriodicJob({
      name: 'service checks and peer pulls',
      intervalMs: config.DISCOVERY_CHECK_INTERVAL_MS,
      run: async () => {
        const due = await store.dueServices(50);
        await inParallel(due, 10, async (service) => {
          const outcome = await checkService(service);
          await store.recordCheck(service, outcome.status, outcome.reason);
        });
        const peers = await store.duePeers(5);
        await inParallel(peers, 2, async (peer) => void (await pull(peer)));
        return { services: due.length, peers: peers.length };
      },
      logger,
    });
    const refresher = createPeriodicJob({
      name: 'agent profile refresh',
      intervalMs: Math.min(60_000, config.DISCOVERY_PROFILE_REFRESH_SECONDS * 1000),
      run: async () => {
        const stale = await store.staleProfiles(new Date(Date.now() - config.DISCOVERY_PROFILE_REFRESH_SECONDS * 1000).toISOString(), 100);
        for (const { tenantId, agentId } of stale) await refreshAgent(store, agents, logger, tenantId, agentId);
        return stale.length;
      },
      logger,
    });

    const onAgentEvent = (event: DomainEvent) => {
      const agentId = (event.payload as { agentId?: unknown }).agentId;
      if (typeof agentId !== 'string') return;
      const done =
        event.type === AGENT_EVENTS.heartbeat
          ? store.recordHeartbeat(event.tenantId, agentId, String((event.payload as { at?: unknown }).at ?? event.occurredAt))
          : Object.values(AGENT_EVENTS).includes(event.type as never)
            ? refreshAgent(store, agents, logger, event.tenantId, agentId)
            : Promise.resolve();
      done.catch((err: unknown) => logger.warn({ err, agentId, type: event.type }, 'applying an agents event failed; the refresh job catches up'));
    };
    const onTaskEvent = (event: DomainEvent) => {
      if (event.type !== TASK_STATE_CHANGED) return;
      const p = event.payload as { taskId?: unknown; agentId?: unknown; to?: unknown };
      if (typeof p.taskId !== 'string' || typeof p.to !== 'string') return;
      store
        .recordTaskState(event.tenantId, p.taskId, typeof p.agentId === 'string' ? p.agentId : null, p.to, event.occurredAt)
        .catch((err: unknown) => logger.warn({ err, taskId: p.taskId }, 'recording a task state failed'));
    };
    const unsubscribes: Promise<() => Promise<void>>[] = [];

    return {
      resolvers,
      createContext: (base) => createDiscoveryContext(base, services),
      start: () => {
        pruner.start();
        checker.start();
        refresher.start();
        for (const [channel, handler] of [
          [AGENTS_CHANNEL, onAgentEvent],
          [ORCHESTRATION_CHANNEL, onTaskEvent],
        ] as const) {
          const unsubscribe = bus.subscribe(channel, handler);
          unsubscribe.catch((err: unknown) => logger.error({ err }, `subscribing to the ${channel} events failed: the refresh job keeps agents current`));
          unsubscribes.push(unsubscribe);
        }
      },
      stop: async () => {
        for (const u of unsubscribes) await (await u.catch(() => async () => {}))();
        await checker.stop();
        await refresher.stop();
        await pruner.stop();
      },
    };
  },
};

/** Reads the agent again from the agents subgraph into the read model (drops it when it is gone). */
export async function refreshAgent(store: DiscoveryStore, agents: AgentSource, logger: Logger, tenantId: string, agentId: string): Promise<void> {
  const profile = await agents.fetch(tenantId, agentId);
  if (profile) await store.upsertProfile(profile);
  else {
    logger.info({ tenantId, agentId }, 'agent no longer exists in the agents subgraph: dropping its discovery data');
    await store.dropAgent(tenantId, agentId);
  }
}
