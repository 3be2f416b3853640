import type { Transaction } from 'kysely';
import type { Database } from './db.ts';
import type { DomainEvent, EventBus } from './events.ts';
import type { Logger } from './logger.ts';

export type Emit = (event: DomainEvent) => void;

/**
 * Runs fn in one write transaction (Database.transaction: grouped with concurrent writes on
 * SQLite) and publishes the events it emitted only once that transaction has committed:
 * subscribers never see a change that was rolled back. A publish failure after commit is logged,
 * not thrown: the write is durable and acknowledged either way.
 */
export async function inTransaction<DB, T>(
  database: Pick<Database<DB>, 'transaction'>,
  bus: EventBus,
  logger: Logger,
  fn: (trx: Transaction<DB>, emit: Emit) => Promise<T>,
): Promise<T> {
  // Collected per run: a write may run again (group commit retries a write whose group SQLite
  // rolled back), and only the run that committed may publish.
  const { result, events } = await database.transaction(async (trx) => {
    const emitted: DomainEvent[] = [];
    const value = await fn(trx, (e) => emitted.push(e));
    return { result: value, events: emitted };
  });
  // All of a write's publishes are issued at once, in order, each failure handled on its own:
  // the buses deliver in the order of the calls, so the events of one write stay together and
  // writes committed together (group commit) publish in their commit order.
  await Promise.all(
    events.map((event) =>
      bus.publish(event).catch((err: unknown) => {
        logger.error({ err, eventType: event.type, subjectId: event.subjectId }, 'event publish failed after commit');
      }),
    ),
  );
  return result;
}
