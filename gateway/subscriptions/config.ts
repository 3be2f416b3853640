import { env, loadConfig, type ConfigOf } from '../../runtime/config.ts';

/** The gateway's subscription settings (read from the same environment as gateway/config.ts). */
export const subscriptionSpec = {
  SUBSCRIPTION_KEEPALIVE_MS: env.int(
    'interval of WebSocket pings to clients and of graphql-ws pings to the subgraphs; a peer that does not answer within the interval (clients) or SUBGRAPH_TIMEOUT_MS (subgraphs) is disconnected; 0 = no pings',
    12_000,
    0,
  ),
  SUBSCRIPTION_PER_SUBJECT_SUBGRAPHS: env.string(
    "subgraphs (comma-separated) whose subscriptions depend on who the subscriber is (collaboration: presence, messages addressed to the caller): their streams carry the subscriber's subject and are shared only by subscribers with the same one",
    'collaboration',
  ),
  SUBSCRIPTION_QUEUE_LIMIT: env.int('events one client subscription may have waiting for its connection; one more closes that connection as too slow', 100, 1),
  SUBSCRIPTION_MAX_BUFFERED_BYTES: env.int(
    'bytes one WebSocket or SSE connection may have written but not yet sent; more closes it as too slow',
    1_048_576,
    1024,
  ),
};

export type SubscriptionConfig = ConfigOf<typeof subscriptionSpec>;

export function loadSubscriptionConfig(source: Record<string, string | undefined> = process.env): SubscriptionConfig {
  return loadConfig(subscriptionSpec, source);
}
