// Thin GraphQL layer: check scopes, validate arguments, call the store, wake the workers.
import type { DomainEvent } from '../../runtime/events.ts';
import { eventStreamsOf } from '../../runtime/event-streams.ts';
import { badInput, notFound } from '../../runtime/errors.ts';
import { idempotentRequest } from '../../runtime/idempotency.ts';
import { requireScopes } from '../../runtime/identity.ts';
import { newId, parseId } from '../../runtime/ids.ts';
import { pageRequest } from '../../runtime/pagination.ts';
import { afterSequenceArg, eventIdentity, eventScalarResolvers, scalarResolvers } from '../../runtime/scalars.ts';
import type { IntegrationsContext } from './context.ts';
import {
  EVENT_CATALOG,
  eventTypes,
  expression,
  inboundName,
  matches,
  normaliseEndpoint,
  normaliseTrigger,
  overlapSeconds,
  viewOf,
  WEBHOOK_DELIVERY_UPDATED,
  WEBHOOK_TEST,
  webhookUrl,
  type EndpointDraft,
} from './domain.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import type { DeliveryEventPayload } from './store.ts';
import { intInRange, optionalText } from '../../runtime/validate.ts';

function reading(ctx: IntegrationsContext): IntegrationsContext {
  requireScopes(ctx.identity, [['integrations:read']]);
  return ctx;
}

function writing(ctx: IntegrationsContext): IntegrationsContext {
  requireScopes(ctx.identity, [['integrations:write']]);
  return ctx;
}

function isoArg(value: string, field: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw badInput(`${field} must be an ISO-8601 instant`, { field });
  return new Date(t).toISOString();
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  ...eventScalarResolvers,
  Query: {
    integrationEventTypes: (_p, { source }, ctx) => {
      reading(ctx);
      return EVENT_CATALOG.filter((e) => source == null || e.source === source);
    },
    webhookEndpoint: (_p, { id }, ctx) => reading(ctx).store.getEndpoint(ctx.tenantId, parseId(id, 'id')),
    webhookEndpoints: (_p, { first, after }, ctx) => reading(ctx).store.listEndpoints(ctx.tenantId, pageRequest({ first, after })),
    webhookDelivery: (_p, { id }, ctx) => reading(ctx).store.getDelivery(ctx.tenantId, parseId(id, 'id')),
    inboundIntegrations: async (_p, { provider }, ctx) =>
      (await reading(ctx).store.listInbound(ctx.tenantId)).filter((i) => provider == null || i.provider === provider),
    trigger: (_p, { id }, ctx) => reading(ctx).store.getTrigger(ctx.tenantId, parseId(id, 'id')),
    triggers: (_p, { first, after }, ctx) => reading(ctx).store.listTriggers(ctx.tenantId, pageRequest({ first, after })),
  },
  Mutation: {
    createWebhookEndpoint: async (_p, args, ctx) => {
      writing(ctx);
      const draft = normaliseEndpoint(args.input);
      const created = await ctx.store.createEndpoint(ctx.tenantId, draft, idempotentRequest(ctx, 'createWebhookEndpoint', args));
      // From now on: the tenant's cursors start at each source's head.
      await ctx.feed.ensureCursors(ctx.tenantId);
      return created;
    },
    updateWebhookEndpoint: (_p, { id, input }, ctx) => {
      writing(ctx);
      const patch: Partial<EndpointDraft> = {};
      if (input.url != null) patch.url = webhookUrl(input.url, 'input.url');
      if (input.description !== undefined) patch.description = optionalText(input.description, 'input.description', 500);
      if (input.eventTypes != null) patch.eventTypes = eventTypes(input.eventTypes, 'input.eventTypes');
      if (input.filter !== undefined) patch.filter = input.filter === null ? null : expression(input.filter, 'input.filter');
      if (input.enabled != null) patch.enabled = input.enabled;
      if (input.rateLimitPerSecond !== undefined)
        patch.rateLimitPerSecond = input.rateLimitPerSecond === null ? null : intInRange(input.rateLimitPerSecond, 'input.rateLimitPerSecond', 1, 10_000);
      return ctx.store.updateEndpoint(ctx.tenantId, parseId(id, 'id'), patch).then((row) => {
        if (patch.enabled) ctx.deliveries.kick();
        return row;
      });
    },
    deleteWebhookEndpoint: (_p, { id }, ctx) => writing(ctx).store.deleteEndpoint(ctx.tenantId, parseId(id, 'id')),
    rotateWebhookSecret: (_p, { id, overlapSeconds: overlap }, ctx) =>
      writing(ctx).store.rotateSecret(ctx.tenantId, parseId(id, 'id'), overlapSeconds(overlap)),
    sendTestEvent: async (_p, { endpointId }, ctx) => {
      writing(ctx);
      const now = new Date(ctx.store.now()).toISOString();
      const id = newId();
      const delivery = await ctx.store.enqueue(ctx.tenantId, parseId(endpointId, 'endpointId'), {
        id,
        type: WEBHOOK_TEST,
        occurredAt: now,
        subjectId: endpointId,
        payload: { message: 'A test event from the agent platform', endpointId },
      });
      ctx.deliveries.kick();
      return delivery;
    },
    retryWebhookDelivery: async (_p, { id }, ctx) => {
      const delivery = await writing(ctx).store.retry(ctx.tenantId, parseId(id, 'id'));
      ctx.deliveries.kick();
      return delivery;
    },
    replayWebhookEvents: async (_p, { endpointId, from, to }, ctx) => {
      writing(ctx);
      const endpoint = await ctx.store.getEndpoint(ctx.tenantId, parseId(endpointId, 'endpointId'));
      if (!endpoint) throw notFound('WebhookEndpoint', endpointId);
      const start = isoArg(from, 'from');
      const end = isoArg(to, 'to');
      if (start >= end) throw badInput('from must be before to', { field: 'from' });
      const queued = await ctx.store.replay(ctx.tenantId, endpoint, start, end, (event: DomainEvent) => matches(endpoint.filter, viewOf(event)));
      ctx.deliveries.kick();
      return { queued };
    },
    createInboundIntegration: async (_p, args, ctx) => {
      writing(ctx);
      const integration = await ctx.store.createInbound(
        ctx.tenantId,
        args.input.provider,
        inboundName(args.input.name),
        idempotentRequest(ctx, 'createInboundIntegration', args),
      );
      return { integration, secret: integration.secret };
    },
    deleteInboundIntegration: (_p, { id }, ctx) => writing(ctx).store.deleteInbound(ctx.tenantId, parseId(id, 'id')),
    createTrigger: async (_p, args, ctx) => {
      writing(ctx);
      const draft = normaliseTrigger(args.input);
      if (draft.action === 'DELIVER_TO_ENDPOINT') {
        const endpointId = parseId(String(draft.actionConfig.endpointId), 'input.action.config.endpointId');
        if (!(await ctx.store.getEndpoint(ctx.tenantId, endpointId))) throw notFound('WebhookEndpoint', endpointId);
      }
      const trigger = await ctx.store.createTrigger(ctx.tenantId, draft, idempotentRequest(ctx, 'createTrigger', args));
      await ctx.feed.ensureCursors(ctx.tenantId);
      return trigger;
    },
    setTriggerEnabled: (_p, { id, enabled }, ctx) => writing(ctx).store.setTriggerEnabled(ctx.tenantId, parseId(id, 'id'), enabled),
    deleteTrigger: (_p, { id }, ctx) => writing(ctx).store.deleteTrigger(ctx.tenantId, parseId(id, 'id')),
  },
  Subscription: {
    webhookDeliveryUpdated: {
      subscribe: (_p, args, ctx) => {
        reading(ctx);
        const endpointId = args.endpointId == null ? null : parseId(args.endpointId, 'endpointId');
        return eventStreamsOf(ctx).stream({
          types: [WEBHOOK_DELIVERY_UPDATED],
          tenantId: ctx.tenantId,
          afterSequence: afterSequenceArg(args.afterSequence),
          filter: (event) => endpointId === null || (event.payload as DeliveryEventPayload).endpointId === endpointId,
        });
      },
      resolve: (event: DomainEvent) => {
        const p = event.payload as DeliveryEventPayload;
        return { deliveryId: p.deliveryId, endpointId: p.endpointId, status: p.status, occurredAt: event.occurredAt, ...eventIdentity(event) };
      },
    },
  },
  WebhookDeliveryUpdatedEvent: {
    delivery: (event, _a, ctx) => ctx.store.getDelivery(ctx.tenantId, event.deliveryId),
  },
  WebhookEndpoint: {
    secrets: (endpoint, _a, ctx) => ctx.store.secretsOf(endpoint.id),
    deliveries: (endpoint, { status, first, after }, ctx) =>
      reading(ctx).store.listDeliveries(ctx.tenantId, endpoint.id, status ?? null, pageRequest({ first, after })),
  },
  WebhookDelivery: {
    attempts: (delivery, _a, ctx) => ctx.store.attempts(delivery.id),
  },
  Trigger: {
    runs: (trigger, { first, after }, ctx) => reading(ctx).store.listRuns(ctx.tenantId, trigger.id, pageRequest({ first, after })),
  },
};
