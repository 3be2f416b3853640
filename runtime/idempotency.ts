// Idempotent create mutations (the `Idempotency-Key` request header, IETF httpapi
// draft-ietf-httpapi-idempotency-key-header-07): a retried request with the same key answers what
// the first one created instead of creating it again. The key is stored in the transaction of
// the change it guards, so "committed" and "remembered" are one fact: a subgraph that commits and
// then dies (or freezes past the gateway's deadline) still answers the retry with the first result.
// No domain logic: a store says what to remember of its result and how to load it back.
import { createHash } from 'node:crypto';
import type { Kysely, Migration, Transaction } from 'kysely';
import { env, loadConfig } from './config.ts';
import type { RequestContext } from './context.ts';
import { domainError } from './errors.ts';
import type { Logger } from './logger.ts';
import { createPeriodicJob, type PeriodicJob } from './periodic-job.ts';

/** The request header, lower-cased as Node gives it. */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/** 1 to 255 printable ASCII characters (space to tilde). */
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

export function isValidIdempotencyKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}

export const IDEMPOTENCY_KEY_RULE = 'the Idempotency-Key header must be 1 to 255 printable ASCII characters';

export const idempotencySpec = {
  IDEMPOTENCY_KEY_TTL_SECONDS: env.int('how long an Idempotency-Key and the answer of its create mutation are kept, in seconds', 86_400, 1),
  IDEMPOTENCY_PRUNE_INTERVAL_MS: env.int('how often expired idempotency keys are deleted, in milliseconds', 60_000, 10),
  TEST_HOLD_AFTER_IDEMPOTENT_COMMIT_MS: env.int('tests only (NODE_ENV=test): a keyed create mutation waits this long after its commit before answering', 0, 0),
};

/** One keyed request: who sent it, the key, and what it asked for. */
export interface IdempotentRequest {
  tenantId: string;
  /** The caller: identity kind and subject, and the agent it acts as. Keys never cross callers. */
  principal: string;
  key: string;
  /** SHA-256 of the mutation field's name and its arguments (canonical JSON). */
  fingerprint: string;
}

/** What a store remembers of a result (JSON: usually the created row's id) and how it loads it back. */
export interface ReplayCodec<T> {
  save(result: T): unknown;
  load(saved: unknown): Promise<T>;
}

/** Runs `work` once per key inside the caller's transaction; a repeat loads the first result. */
export type Once = <DB, T>(trx: Transaction<DB>, now: number, work: () => Promise<T>, codec: ReplayCodec<T>) => Promise<T>;

interface IdempotencyKeyTable {
  tenant_id: string;
  principal: string;
  key: string;
  fingerprint: string;
  /** JSON of ReplayCodec.save; null only inside the transaction that claimed the key. */
  result: string | null;
  created_at: number;
  expires_at: number;
}

interface IdempotencyTables {
  idempotency_keys: IdempotencyKeyTable;
}

/** The migration every subgraph with keyed mutations adds (its `000N_idempotency`). */
export function idempotencyMigration(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('result', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['tenant_id', 'principal', 'key'])
        .execute();
      await db.schema.createIndex('idempotency_keys_expires_idx').on('idempotency_keys').column('expires_at').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('idempotency_keys').execute();
    },
  };
}

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` fingerprint alike. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function fingerprint(field: string, args: unknown): string {
  return createHash('sha256').update(field).update('\n').update(canonical(args)).digest('hex');
}

/**
 * The keyed request of a create mutation, or undefined when the client sent no key. The gateway
 * validated the key; a subgraph reached directly checks it again.
 */
export function idempotentRequest(ctx: RequestContext, field: string, args: unknown): IdempotentRequest | undefined {
  const key = ctx.idempotencyKey;
  if (key === undefined) return undefined;
  if (!isValidIdempotencyKey(key)) throw domainError('BAD_USER_INPUT', IDEMPOTENCY_KEY_RULE, { header: 'Idempotency-Key' });
  const { kind, subject, agentId } = ctx.identity;
  return { tenantId: ctx.tenantId, principal: JSON.stringify([kind, subject, agentId ?? null]), key, fingerprint: fingerprint(field, args) };
}

const inFlight = () =>
  domainError('IDEMPOTENCY_KEY_IN_FLIGHT', 'a request with this Idempotency-Key is still being processed; retry once it has answered', {
    header: 'Idempotency-Key',
  });

const reused = () =>
  domainError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different request; use a new key for a new request', {
    header: 'Idempotency-Key',
  });

const passThrough: Once = (_trx, _now, work) => work();

export interface IdempotencyOptions {
  ttlSeconds: number;
  /** Tests only: how long a fresh keyed commit waits before answering (the ghost-write scenario). */
  holdAfterCommitMs?: number;
}

/** One per subgraph process: the keys in flight here, and the rules of the stored ones. */
export class Idempotency {
  /** Keys being processed by this process: a concurrent repeat answers 409 at once. */
  private readonly running = new Set<string>();

  constructor(private readonly options: IdempotencyOptions) {}

  /**
   * Runs a keyed create. `transact` opens the store's transaction and calls the `Once` it is given
   * inside it. Without a key, `Once` just runs the work. A repeat of a committed request returns
   * the stored result (loaded by the codec); the same key with another fingerprint is
   * IDEMPOTENCY_KEY_REUSED; the same key still running in this process is IDEMPOTENCY_KEY_IN_FLIGHT.
   * Across processes (PostgreSQL replicas) the key's row serialises the two: the second waits for
   * the first's commit, then replays it.
   */
  async run<T>(request: IdempotentRequest | undefined, transact: (once: Once) => Promise<T>): Promise<T> {
    if (!request) return transact(passThrough);
    const slot = JSON.stringify([request.tenantId, request.principal, request.key]);
    if (this.running.has(slot)) throw inFlight();
    this.running.add(slot);
    let fresh = false;
    let result: T;
    try {
      result = await transact(async (trx, now, work, codec) => {
        const outcome = await this.claim(trx as unknown as Transaction<IdempotencyTables>, request, now);
        if (outcome.kind === 'replay') return codec.load(outcome.saved);
        const value = await work();
        await (trx as unknown as Transaction<IdempotencyTables>)
          .updateTable('idempotency_keys')
          .set({ result: JSON.stringify(codec.save(value) ?? null) })
          .where('tenant_id', '=', request.tenantId)
          .where('principal', '=', request.principal)
          .where('key', '=', request.key)
          .execute();
        fresh = true;
        return value;
      });
    } finally {
      // Released at commit: a retry from here on finds the stored answer.
      this.running.delete(slot);
    }
    const hold = this.options.holdAfterCommitMs ?? 0;
    if (fresh && hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
    return result;
  }

  /**
   * Whether a committed request already stands for this key (IDEMPOTENCY_KEY_REUSED when it was
   * another request): lets a create skip work done outside its transaction (e.g. a call to
   * another service) on a plain repeat. run() still decides; this only saves the work.
   */
  async stored<DB>(db: Kysely<DB>, request: IdempotentRequest | undefined, now: number): Promise<boolean> {
    if (!request) return false;
    const existing = await (db as unknown as Kysely<IdempotencyTables>)
      .selectFrom('idempotency_keys')
      .select(['fingerprint', 'result'])
      .where('tenant_id', '=', request.tenantId)
      .where('principal', '=', request.principal)
      .where('key', '=', request.key)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (!existing || existing.result === null) return false;
    if (existing.fingerprint !== request.fingerprint) throw reused();
    return true;
  }

  /** Claims the key in this transaction, or says what it already stands for. */
  private async claim(
    trx: Transaction<IdempotencyTables>,
    request: IdempotentRequest,
    now: number,
  ): Promise<{ kind: 'claimed' } | { kind: 'replay'; saved: unknown }> {
    // An expired key is free again.
    await trx
      .deleteFrom('idempotency_keys')
      .where('tenant_id', '=', request.tenantId)
      .where('principal', '=', request.principal)
      .where('key', '=', request.key)
      .where('expires_at', '<=', now)
      .execute();
    const inserted = await trx
      .insertInto('idempotency_keys')
      .values({
        tenant_id: request.tenantId,
        principal: request.principal,
        key: request.key,
        fingerprint: request.fingerprint,
        result: null,
        created_at: now,
        expires_at: now + this.options.ttlSeconds * 1000,
      })
      // PostgreSQL: waits for a concurrent transaction holding the same key, then does nothing if it committed.
      .onConflict((oc) => oc.columns(['tenant_id', 'principal', 'key']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0) return { kind: 'claimed' };
    const existing = await trx
      .selectFrom('idempotency_keys')
      .select(['fingerprint', 'result'])
      .where('tenant_id', '=', request.tenantId)
      .where('principal', '=', request.principal)
      .where('key', '=', request.key)
      .executeTakeFirst();
    if (!existing || existing.result === null) throw inFlight();
    if (existing.fingerprint !== request.fingerprint) throw reused();
    return { kind: 'replay', saved: JSON.parse(existing.result) as unknown };
  }
}

/** Deletes the keys whose retention ended; returns how many. */
export async function pruneIdempotencyKeys<DB>(db: Kysely<DB>, now: number): Promise<number> {
  const result = await (db as unknown as Kysely<IdempotencyTables>).deleteFrom('idempotency_keys').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * A subgraph's idempotency: the keys' rules from its environment, and the job that prunes the
 * expired ones (start it with the subgraph's other jobs).
 */
export function createIdempotency<DB>(deps: {
  db: Kysely<DB>;
  env: Record<string, string | undefined>;
  nodeEnv: string;
  logger: Logger;
  clock?: () => number;
}): { idempotency: Idempotency; pruner: PeriodicJob } {
  const config = loadConfig(idempotencySpec, deps.env);
  const clock = deps.clock ?? Date.now;
  const idempotency = new Idempotency({
    ttlSeconds: config.IDEMPOTENCY_KEY_TTL_SECONDS,
    holdAfterCommitMs: deps.nodeEnv === 'test' ? config.TEST_HOLD_AFTER_IDEMPOTENT_COMMIT_MS : 0,
  });
  const pruner = createPeriodicJob({
    name: 'idempotency key prune',
    intervalMs: config.IDEMPOTENCY_PRUNE_INTERVAL_MS,
    run: () => pruneIdempotencyKeys(deps.db, clock()),
    logger: deps.logger,
  });
  return { idempotency, pruner };
}

/** The codec of a created row: remembers its id, loads it back (as it is now) on a repeat. */
export function replayById<T extends { id: string }>(load: (id: string) => Promise<T | null>): ReplayCodec<T> {
  return {
    save: (result) => result.id,
    async load(saved) {
      const found = typeof saved === 'string' ? await load(saved) : null;
      if (!found) throw new Error(`the result of an idempotent request (${String(saved)}) no longer exists`);
      return found;
    },
  };
}
