// The series every subgraph has, whatever its domain: its GraphQL operations (an Apollo plugin),
// SQLite group-commit sizes, PostgreSQL pool use, events published, delivered and dropped, open
// event streams and their queues, and whether Redis is degraded. runtime/subgraph.ts wires them;
// a subgraph's own series come from its instance's registerMetrics().
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { Kind, type GraphQLSchema } from 'graphql';
import type { Database } from './db.ts';
import type { EventStreams } from './event-streams.ts';
import type { EventBus } from './events.ts';
import { callbackGauge, Counter, errorCodesOf, Gauge, Histogram, secondsSince, type ServiceMetrics } from './metrics.ts';

export interface SubgraphMetrics {
  /** For openDatabase's onCommitGroup. */
  onCommitGroup(size: number): void;
  /** For EventStreams' onEvent. */
  onStreamEvent(outcome: 'delivered' | 'dropped'): void;
  /** The bus with its publishes counted. */
  observeBus(bus: EventBus): EventBus;
  /** Records a readiness check's outcome for a dependency (1 degraded, 0 ok). */
  setDegraded(dependency: string, degraded: boolean): void;
  /** Wires what exists only once the subgraph is built. */
  attach(parts: { database: Database<unknown>; streams: EventStreams | undefined }): void;
  plugin<C extends BaseContext>(): ApolloServerPlugin<C>;
}

/**
 * A subgraph's operations are the gateway's query-plan fetches, named after the client's
 * operations (unbounded): they are labelled by their first root field instead, which the schema bounds.
 */
function rootFieldNames(schema: GraphQLSchema): string[] {
  const names: string[] = [];
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    if (type) names.push(...Object.keys(type.getFields()));
  }
  return names;
}

export function createSubgraphMetrics(metrics: ServiceMetrics, schema: () => GraphQLSchema | undefined): SubgraphMetrics {
  const { registry, enabled } = metrics;
  const groupSize = new Histogram({
    name: 'sqlite_group_commit_batch_size',
    help: 'SQLite writes committed together in one transaction (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  });
  const published = new Counter({
    name: 'events_published_total',
    help: 'Domain events published to the bus, by outcome (ok, failed: left for the outbox relay)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const streamed = new Counter({
    name: 'events_streamed_total',
    help: 'Domain events handed to subscription streams (delivered) or dropped (a stream queue full or closed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const degraded = new Gauge({
    name: 'subgraph_dependency_degraded',
    help: 'A dependency the subgraph can do without for a while is degraded (1) or ok (0), as last seen by /readyz',
    labelNames: ['dependency'] as const,
    registers: [registry],
  });
  let database: Database<unknown> | undefined;
  let streams: EventStreams | undefined;
  callbackGauge(
    registry,
    { name: 'pg_pool_connections', help: 'PostgreSQL pool connections by state (total, idle, waiting clients)', labelNames: ['state'] as const },
    (set) => {
      const use = database?.poolUse?.();
      if (!use) return;
      set({ state: 'total' }, use.total);
      set({ state: 'idle' }, use.idle);
      set({ state: 'waiting' }, use.waiting);
    },
  );
  callbackGauge(registry, { name: 'event_streams_active', help: 'Open subscription event streams (the gateway subscribes through them)' }, (set) => {
    if (streams) set({}, streams.active);
  });
  callbackGauge(registry, { name: 'event_stream_queue_depth', help: 'Events waiting in open streams for their consumer' }, (set) => {
    if (streams) set({}, streams.queued);
  });
  let known = false;
  return {
    onCommitGroup: (size) => enabled && groupSize.observe(size),
    onStreamEvent: (outcome) => enabled && streamed.labels(outcome).inc(),
    observeBus(bus) {
      if (!enabled) return bus;
      return {
        kind: bus.kind,
        async publish(event, channel) {
          try {
            await bus.publish(event, channel);
          } catch (err) {
            published.labels('failed').inc();
            throw err;
          }
          published.labels('ok').inc();
        },
        subscribe: (channel, handler) => bus.subscribe(channel, handler),
        onReconnect: (listener) => bus.onReconnect(listener),
        ping: () => bus.ping(),
        close: () => bus.close(),
      };
    },
    setDegraded: (dependency, isDegraded) => enabled && degraded.labels(dependency).set(isDegraded ? 1 : 0),
    attach(parts) {
      database = parts.database;
      streams = parts.streams;
    },
    plugin<C extends BaseContext>(): ApolloServerPlugin<C> {
      return {
        async requestDidStart() {
          if (!enabled) return;
          if (!known) {
            const current = schema();
            if (current) {
              metrics.operationNames.add(rootFieldNames(current));
              known = true;
            }
          }
          const started = process.hrtime.bigint();
          let type = 'unknown';
          let name: string | undefined;
          return {
            async didResolveOperation({ operation }) {
              if (!operation) return;
              type = operation.operation;
              const first = operation.selectionSet.selections[0];
              name = first?.kind === Kind.FIELD ? first.name.value : undefined;
            },
            async willSendResponse({ response }) {
              const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
              metrics.observeOperation({ type, name }, secondsSince(started), errorCodesOf(errors));
            },
          };
        },
      };
    },
  };
}
