import type { Kysely, Transaction } from 'kysely';
import type { DomainEvent, EventBus } from './events.ts';
import type { Logger } from './logger.ts';

export type Emit = (event: DomainEvent) => void;

/**
 * Runs fn in one transaction and publishes the events it emitted only once the transaction has
 * committed: subscribers never see a change that was rolled back. A publish failure after commit
 * is logged, not thrown: the write is durable and acknowledged either way.
 */
export async function inTransaction<DB, T>(
  db: Kysely<DB>,
  bus: EventBus,
  logger: Logger,
  fn: (trx: Transaction<DB>, emit: Emit) => Promise<T>,
): Promise<T> {
  const events: DomainEvent[] = [];
  const result = await db.transaction().execute((trx) => fn(trx, (e) => events.push(e)));
  for (const event of events) {
    try {
      await bus.publish(event);
    } catch (err) {
      logger.error({ err, eventType: event.type, subjectId: event.subjectId }, 'event publish failed after commit');
    }
  }
  return result;
}
