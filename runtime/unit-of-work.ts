import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Database } from './db.ts';
import type { DomainEvent, EventBus, NewDomainEvent } from './events.ts';
import type { Logger } from './logger.ts';
import type { TransactionalEvents } from './outbox.ts';
import { currentTraceCarrier } from './tracing.ts';

export type Emit = (event: NewDomainEvent) => void;

/**
 * Where a store's events go: a transactional outbox (runtime/outbox.ts: written with the change,
 * published after commit, relayed after a crash), or, for a subgraph without one, the bus
 * directly after commit (lost if the process dies in between).
 */
export type EventSink = TransactionalEvents | EventBus;

const isTransactional = (sink: EventSink): sink is TransactionalEvents => 'append' in sink;

/**
 * Runs fn in one write transaction (Database.transaction: grouped with concurrent writes on
 * SQLite). The events it emitted are appended to the outbox at the end of that transaction, and
 * handed over for publishing only once it committed: subscribers never see a change that was
 * rolled back, and a committed change never loses its events.
 */
export async function inTransaction<DB, T>(
  database: Pick<Database<DB>, 'transaction'>,
  sink: EventSink,
  logger: Logger,
  fn: (trx: Transaction<DB>, emit: Emit) => Promise<T>,
): Promise<T> {
  // Collected per run: a write may run again (group commit retries a write whose group SQLite
  // rolled back), and only the run that committed may publish.
  // Taken here, in the caller's context: a grouped SQLite commit may run fn in another request's.
  const trace = currentTraceCarrier();
  const { result, events } = await database.transaction(async (trx) => {
    const emitted: NewDomainEvent[] = [];
    const value = await fn(trx, (e) => emitted.push(trace ? { ...e, trace } : e));
    // Last: on PostgreSQL the outbox's per-tenant counter row stays locked until COMMIT.
    const stored = isTransactional(sink) ? await sink.append(trx, emitted) : emitted.map((e): DomainEvent => ({ ...e, id: randomUUID(), sequence: 0 }));
    return { result: value, events: stored };
  });
  if (isTransactional(sink)) {
    sink.committed(events);
    return result;
  }
  // All of a write's publishes are issued at once, in order, each failure handled on its own:
  // the buses deliver in the order of the calls, so the events of one write stay together and
  // writes committed together (group commit) publish in their commit order.
  await Promise.all(
    events.map((event) =>
      sink.publish(event).catch((err: unknown) => {
        logger.error({ err, eventType: event.type, subjectId: event.subjectId }, 'event publish failed after commit');
      }),
    ),
  );
  return result;
}
