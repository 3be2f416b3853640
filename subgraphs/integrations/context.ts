import type { RequestContext } from '../../runtime/context.ts';
import type { DeliveryWorker } from './delivery.ts';
import type { EventFeed } from './feed.ts';
import type { IntegrationsStore } from './store.ts';

/** Per request: the store, and the feed and sender to wake after a write; who calls comes from the runtime. */
export interface IntegrationsContext extends RequestContext {
  store: IntegrationsStore;
  feed: EventFeed;
  deliveries: DeliveryWorker;
}

export function createIntegrationsContext(base: RequestContext, store: IntegrationsStore, feed: EventFeed, deliveries: DeliveryWorker): IntegrationsContext {
  return { ...base, store, feed, deliveries };
}
