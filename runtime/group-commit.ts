import type { ControlledTransaction, Kysely, Transaction } from 'kysely';
import type { Logger } from './logger.ts';

export type Work<DB, T> = (trx: Transaction<DB>) => Promise<T>;

export interface GroupCommitOptions {
  /** Most writes committed together; 1 commits every write in its own transaction. */
  maxGroupSize: number;
  /** Whether the connection is still in a transaction: false once SQLite rolled one back by itself. */
  inTransaction(): boolean;
  /** Counts committed transactions (Database.stats). */
  onCommit(): void;
  /** How many writes each group ran (runtime/metrics.ts: sqlite_group_commit_batch_size). */
  onGroup?(size: number): void;
  logger: Logger;
}

interface Pending<DB> {
  work: Work<DB, unknown>;
  resolve(value: unknown): void;
  reject(reason: unknown): void;
}

// One name is enough: a group runs its writes one after the other, never nested.
const SAVEPOINT = 'group_commit_unit';

/**
 * Group commit for SQLite. Every COMMIT with synchronous=FULL waits for an fsync, and
 * better-sqlite3 waits with the event loop blocked, so one transaction per write made the fsync
 * the price of every write. Here the writes that arrive while the database is busy (or within
 * one turn of the event loop) run in ONE transaction, each in its own savepoint, one after the
 * other, and share one COMMIT:
 *
 * - a write that throws is rolled back to its savepoint: only it fails, with its own error, and
 *   the writes after it see the database as if it had never run;
 * - every caller is answered only once the COMMIT returned, so an acknowledged write is exactly
 *   as durable as before (WAL, synchronous=FULL: on disk before the answer);
 * - when SQLite certainly wrote nothing of the group (it ended the transaction on its own in the
 *   middle of a write, e.g. a full disk, or refused the COMMIT and kept the transaction open),
 *   the writes were never acknowledged and run again, each in a transaction of its own: each
 *   gets the outcome it would have had alone;
 * - a COMMIT that failed with an unknown outcome (an I/O error) fails every write of the group,
 *   as each write's own COMMIT would have.
 *
 * Writes run in arrival order and each sees the writes before it, as if they had been
 * committed one by one in that order (SQLite has one writer at a time anyway).
 */
export class GroupCommit<DB> {
  private readonly queue: Pending<DB>[] = [];
  private scheduled = false;
  private running = false;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly options: GroupCommitOptions,
  ) {}

  run<T>(work: Work<DB, T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  // setImmediate runs after the I/O callbacks of this turn: every request already read has had
  // its chance to join. A group in progress holds the next one back until it committed.
  private schedule(): void {
    if (this.scheduled || this.running || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      const group = this.queue.splice(0, this.options.maxGroupSize);
      this.options.onGroup?.(group.length);
      const [first] = group;
      if (group.length === 1 && first) await this.alone(first);
      else await this.together(group);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  private async alone(pending: Pending<DB>): Promise<void> {
    try {
      const value = await this.db.transaction().execute(pending.work);
      this.options.onCommit();
      pending.resolve(value);
    } catch (err) {
      pending.reject(err);
    }
  }

  private async together(group: Pending<DB>[]): Promise<void> {
    let trx: ControlledTransaction<DB>;
    try {
      trx = await this.db.startTransaction().execute();
    } catch (err) {
      for (const pending of group) pending.reject(err);
      return;
    }
    const done: { pending: Pending<DB>; value: unknown }[] = [];
    for (let i = 0; i < group.length; i++) {
      const pending = group[i] as Pending<DB>;
      let unit: ControlledTransaction<DB, [typeof SAVEPOINT]> | undefined;
      try {
        unit = await trx.savepoint(SAVEPOINT).execute();
        const value = await pending.work(unit);
        await unit.releaseSavepoint(SAVEPOINT).execute();
        done.push({ pending, value });
      } catch (err) {
        if (unit && (await this.undo(unit))) {
          pending.reject(err);
          continue;
        }
        // The transaction is gone (or cannot be trusted): nothing of this group is durable.
        await this.rollbackQuietly(trx);
        if (unit) pending.reject(err);
        const again = [...done.map((d) => d.pending), ...(unit ? [] : [pending]), ...group.slice(i + 1)];
        this.options.logger.warn({ err, writes: again.length }, 'SQLite ended a grouped transaction; running its other writes alone');
        for (const other of again) await this.alone(other);
        return;
      }
    }
    try {
      await trx.commit().execute();
    } catch (err) {
      // Still in the transaction: SQLite refused to commit (a deferred constraint, a lock) and
      // wrote nothing, so each write can be tried alone. Otherwise the outcome is unknown (an
      // I/O error may leave a commit record in the WAL): each caller gets the error, as its own
      // failed COMMIT would have given it.
      const nothingWritten = this.options.inTransaction();
      await this.rollbackQuietly(trx);
      if (nothingWritten) {
        this.options.logger.warn({ err, writes: done.length }, 'a grouped COMMIT was refused; running its writes alone');
        for (const { pending } of done) await this.alone(pending);
      } else {
        for (const { pending } of done) pending.reject(err);
      }
      return;
    }
    this.options.onCommit();
    for (const { pending, value } of done) pending.resolve(value);
  }

  /** Rolls one write back to its savepoint; false when the transaction itself is gone. */
  private async undo(unit: ControlledTransaction<DB, [typeof SAVEPOINT]>): Promise<boolean> {
    if (!this.options.inTransaction()) return false;
    try {
      await unit.rollbackToSavepoint(SAVEPOINT).execute();
      await unit.releaseSavepoint(SAVEPOINT).execute();
      return true;
    } catch (err) {
      this.options.logger.error({ err }, 'rolling a write back to its savepoint failed');
      return false;
    }
  }

  // Also releases kysely's hold on the connection; after SQLite's own rollback there is no
  // transaction left to roll back, and that error says nothing new.
  private async rollbackQuietly(trx: ControlledTransaction<DB>): Promise<void> {
    try {
      await trx.rollback().execute();
    } catch (err) {
      if (this.options.inTransaction()) this.options.logger.error({ err }, 'rolling back a grouped transaction failed');
    }
  }
}
