// The trigger runner: runs that the feed queued (one per trigger and event, by a unique key) are
// taken, marked RUNNING in a committed write, and only then acted on, so a run never starts twice
// even across a crash (at most once). Actions: submit a task or start a workflow run in the
// orchestration subgraph (its service client, acting for the tenant), post a Slack message to an
// incoming webhook (Block Kit body, through the same safe sender as webhooks), or queue the event
// to a webhook endpoint.
import type { ServiceClient } from '../../runtime/service-client.ts';
import type { Logger } from '../../runtime/logger.ts';
import { createPeriodicJob, type PeriodicJob } from '../../runtime/periodic-job.ts';
import { fill, viewOf, type EventView } from './domain.ts';
import type { SafeSender } from './sender.ts';
import type { IntegrationsStore, TriggerRow } from './store.ts';

export interface TriggerRunnerOptions {
  store: IntegrationsStore;
  orchestration: ServiceClient;
  sender: SafeSender;
  logger: Logger;
  pollMs: number;
  /** A DELIVER_TO_ENDPOINT action queued something. */
  onQueued: () => void;
}

const SUBMIT_TASK = 'mutation($input: SubmitTaskInput!) { submitTask(input: $input) { id } }';
const START_RUN = 'mutation($definitionId: ID!, $input: JSON) { startWorkflowRun(definitionId: $definitionId, input: $input) { id } }';

export class TriggerRunner {
  private stopped = true;

  // Polls every pollMs, and at once when kicked (something was queued).
  private readonly job: PeriodicJob;

  constructor(private readonly o: TriggerRunnerOptions) {
    this.job = createPeriodicJob({ name: 'trigger runs', intervalMs: o.pollMs, run: () => this.runDue(), logger: o.logger, runAtStart: true });
  }

  start(): void {
    this.stopped = false;
    this.job.start();
  }

  /** Something was queued: look now. */
  kick(): void {
    this.job.kick();
  }

  private async runDue(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const runs = await this.o.store.claimRuns(20);
        if (runs.length === 0) return;
        await Promise.all(
          runs.map(async (run) => {
            const event = await this.o.store.event(run.eventId);
            if (!event) return this.o.store.finishRun(run.id, { status: 'FAILED', error: 'the event is no longer stored' });
            try {
              const result = await this.act(run.trigger, viewOf(event));
              await this.o.store.finishRun(run.id, { status: 'SUCCEEDED', result });
            } catch (err) {
              const message = err instanceof Error ? err.message : String(err);
              this.o.logger.warn({ err, triggerId: run.triggerId, eventId: run.eventId }, 'trigger action failed');
              await this.o.store.finishRun(run.id, { status: 'FAILED', error: message.slice(0, 1000) });
            }
          }),
        );
      }
    } catch (err) {
      this.o.logger.error({ err }, 'running triggers failed; trying again shortly');
    }
  }

  private async act(trigger: TriggerRow, view: EventView): Promise<unknown> {
    const config = (await fill(trigger.actionConfig, view)) as Record<string, unknown>;
    const caller = { tenantId: trigger.tenantId, onBehalfOf: `trigger:${trigger.id}`, scopes: ['tasks:write', 'tasks:read'] };
    switch (trigger.action) {
      case 'SUBMIT_TASK': {
        const input = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null && v !== undefined));
        const { submitTask } = await this.o.orchestration.query<{ submitTask: { id: string } }>(caller, SUBMIT_TASK, { input });
        return { taskId: submitTask.id };
      }
      case 'START_WORKFLOW_RUN': {
        const { startWorkflowRun } = await this.o.orchestration.query<{ startWorkflowRun: { id: string } }>(caller, START_RUN, {
          definitionId: config.definitionId,
          input: config.input ?? null,
        });
        return { workflowRunId: startWorkflowRun.id };
      }
      case 'SLACK_POST': {
        const body = JSON.stringify({ text: config.text, ...(config.blocks ? { blocks: config.blocks } : {}) });
        const sent = await this.o.sender.post(String(config.webhookUrl), {}, body);
        if (sent.error !== null) throw new Error(`Slack answered: ${sent.error}${sent.responseExcerpt ? ` (${sent.responseExcerpt.slice(0, 200)})` : ''}`);
        return { statusCode: sent.statusCode };
      }
      case 'DELIVER_TO_ENDPOINT': {
        const delivery = await this.o.store.enqueue(trigger.tenantId, String(config.endpointId), {
          id: view.id,
          type: view.type,
          occurredAt: view.occurredAt,
          subjectId: view.subjectId,
          payload: view.data,
        });
        this.o.onQueued();
        return { deliveryId: delivery.id };
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.job.stop();
  }
}
