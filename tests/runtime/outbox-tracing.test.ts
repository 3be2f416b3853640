// An event the outbox relay publishes (its writer crashed or the bus failed after commit) stays
// in the trace of the request that wrote it: the trace context is stored with the event, the
// relay's PRODUCER span continues that trace, and the published event still carries it for the
// delivery's CONSUMER span.
import type { Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox, outboxMigration, outboxTraceMigration, type OutboxTables } from '../../runtime/outbox.ts';
import { currentTraceCarrier, loadTracingConfig, startTracing, withSpan, type Tracing } from '../../runtime/tracing.ts';
import { inTransaction } from '../../runtime/unit-of-work.ts';
import { openTestDatabase, silentLogger, type TestDatabase } from '../support/databases.ts';
import { recordingBus } from '../support/store-helpers.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';

type DB = { notes: { id: string } } & OutboxTables;

const migrations: Record<string, Migration> = {
  '0001_notes': {
    async up(db) {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .execute();
    },
  },
  '0002_outbox': outboxMigration(),
  '0003_outbox_trace': outboxTraceMigration(),
};

let receiver: OtlpReceiver;
let tracing: Tracing;
let t: TestDatabase<DB>;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  tracing = await startTracing('outbox-test', loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }));
  t = await openTestDatabase<DB>('sqlite', 'outbox-tracing', migrations);
});

afterAll(async () => {
  await t?.drop();
  await receiver?.close();
});

describe('outbox and tracing', () => {
  it('a relayed event continues the trace of the write that stored it', async () => {
    const events = recordingBus();
    events.failing = true;
    const outbox = new Outbox({
      database: t.database as never,
      bus: events,
      logger: silentLogger,
      channel: 'notes',
      retentionSeconds: 60,
      relayIntervalMs: 60_000,
    });
    let writeTraceId = '';
    await tracing.run(() =>
      withSpan('write note', {}, async () => {
        writeTraceId = currentTraceCarrier()?.traceparent.split('-')[1] ?? '';
        await inTransaction(t.database, outbox, silentLogger, async (trx, emit) => {
          await trx.insertInto('notes').values({ id: 'n1' }).execute();
          emit({ type: 'NoteAdded', tenantId: 't1', subjectId: 'n1', occurredAt: new Date().toISOString(), payload: {} });
        });
      }),
    );
    await outbox.settle();
    expect(writeTraceId).toMatch(/^[0-9a-f]{32}$/);
    expect(events.published).toHaveLength(0);
    const stored = await t.database.db.selectFrom('outbox_events').select(['trace', 'published_at']).execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]?.published_at).toBeNull();
    expect(JSON.parse(stored[0]?.trace ?? '{}').traceparent).toContain(writeTraceId);

    // The relay runs later, outside any request (as after a restart).
    events.failing = false;
    expect(await outbox.relay(0)).toBe(1);
    expect(events.published[0]?.trace?.traceparent).toContain(writeTraceId);
    await outbox.stop();
    await tracing.shutdown();
    const publish = receiver.spans.filter((s) => s.name === 'publish NoteAdded');
    // The failed publish after commit and the relay's, both in the write's trace.
    expect(publish.map((s) => s.traceId)).toEqual([writeTraceId, writeTraceId]);
    expect(publish.filter((s) => s.attributes['outbox.relayed'] === true)).toHaveLength(1);
  });
});
