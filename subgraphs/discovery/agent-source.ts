// Discovery reads agents from the agents subgraph (their owner), straight and signed for it with the
// tenant and only agents:read (runtime/service-client.ts), to refresh its read model.
import { domainError } from '../../runtime/errors.ts';
import type { IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { createServiceClient, type ServiceClient } from '../../runtime/service-client.ts';
import type { AgentProfile } from './domain.ts';

const AGENT = /* GraphQL */ `
  query DiscoveryAgentProfile($id: ID!) {
    agent(id: $id) {
      id name description agentVersion endpointUrl
      provider { organization url }
      capabilities { streaming pushNotifications }
      skills { id name description tags examples inputModes outputModes }
      labels { key value }
      defaultInputModes defaultOutputModes
      status heartbeatIntervalSeconds lastHeartbeatAt
    }
  }
`;

type AgentData = Omit<AgentProfile, 'tenantId' | 'agentId' | 'syncedAt'> & { id: string };

export interface AgentSource {
  /** The agent as the agents subgraph has it now, or null when the tenant has none. */
  fetch(tenantId: string, agentId: string, requestId?: string | null): Promise<AgentProfile | null>;
}

export function agentSource(client: ServiceClient, clock: () => number = Date.now): AgentSource {
  return {
    async fetch(tenantId, agentId, requestId) {
      const data = await client.query<{ agent: AgentData | null }>({ tenantId, scopes: ['agents:read'], requestId: requestId ?? null }, AGENT, { id: agentId });
      if (!data.agent) return null;
      const { id, ...rest } = data.agent;
      return { ...rest, tenantId, agentId: id, syncedAt: new Date(clock()).toISOString() };
    },
  };
}

export function createAgentSource(options: { url: string | readonly string[]; identity: IdentityService; logger: Logger }): AgentSource {
  return agentSource(createServiceClient({ from: 'discovery', to: 'agents', url: options.url, identity: options.identity, logger: options.logger }));
}

export const agentNotFound = (agentId: string) => domainError('AGENT_NOT_FOUND', `Agent "${agentId}" not found`, { agentId });
