// Orchestration asks the agents subgraph about an agent at claim time: whether it exists in the
// caller's tenant, its status and its registered skills' tags. One call per claim and no cache,
// so pausing or retiring an agent stops its next claim at once. The call goes straight to the
// agents subgraph (runtime/service-client.ts), signed for it with the caller's tenant and only
// agents:read.
import { domainError } from '../../runtime/errors.ts';
import type { IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { createServiceClient, type ServiceClient } from '../../runtime/service-client.ts';
import type { AgentStanding } from './domain.ts';

export interface AgentLookup {
  tenantId: string;
  /** The subject of the request being served, for the agents subgraph's logs. */
  onBehalfOf: string | null;
  requestId: string | null;
}

export interface AgentDirectory {
  /** The agent as registered now; AGENT_NOT_FOUND when the tenant has no such agent, DEPENDENCY_UNAVAILABLE when the agents subgraph cannot answer. */
  standing(lookup: AgentLookup, agentId: string): Promise<AgentStanding>;
}

const AGENT_STANDING = /* GraphQL */ `
  query OrchestrationAgentStanding($id: ID!) {
    agent(id: $id) { id status skills { tags } }
  }
`;

interface AgentStandingData {
  agent: { id: string; status: string; skills: { tags: string[] }[] } | null;
}

export function agentDirectory(client: ServiceClient): AgentDirectory {
  return {
    async standing(lookup, agentId) {
      const data = await client.query<AgentStandingData>(
        { tenantId: lookup.tenantId, onBehalfOf: lookup.onBehalfOf, scopes: ['agents:read'], requestId: lookup.requestId },
        AGENT_STANDING,
        { id: agentId },
      );
      if (!data.agent) throw domainError('AGENT_NOT_FOUND', `Agent "${agentId}" not found`, { agentId });
      return { id: data.agent.id, status: data.agent.status, skillTags: data.agent.skills.flatMap((skill) => skill.tags) };
    },
  };
}

export function createAgentDirectory(options: { url: string | readonly string[]; identity: IdentityService; logger: Logger }): AgentDirectory {
  return agentDirectory(createServiceClient({ from: 'orchestration', to: 'agents', url: options.url, identity: options.identity, logger: options.logger }));
}
