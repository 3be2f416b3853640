import type { RequestContext } from '../../runtime/context.ts';
import type { AgentSource } from './agent-source.ts';
import type { CardSigner } from './cards.ts';
import type { PeerRow } from './store.ts';
import type { DiscoveryStore } from './store.ts';

/** What every request of the discovery subgraph shares: its store, where agents come from, the node's identity. */
export interface DiscoveryServices {
  store: DiscoveryStore;
  agents: AgentSource;
  /** Null without DISCOVERY_SIGNING_KEY: cards are served unsigned. */
  signer: CardSigner | null;
  /** The gateway's public base URL, without a trailing slash (DISCOVERY_PUBLIC_URL). */
  publicUrl: string;
  nodeName: string;
  /** Pulls a peer now and records the outcome. */
  pull(peer: PeerRow): Promise<PeerRow>;
}

/** Per request: the services; who is calling (base.identity) and its tenant come from the runtime. */
export interface DiscoveryContext extends RequestContext, DiscoveryServices {}

export function createDiscoveryContext(base: RequestContext, services: DiscoveryServices): DiscoveryContext {
  return { ...base, ...services };
}
