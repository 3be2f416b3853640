// Agent credentials are API keys that the governance subgraph keeps (hashed, revocable, rotated
// there). This subgraph asks governance to mint one for an agent it registers, over
// runtime/service-client.ts, signed for the tenant of the registration and with only the scope
// each question needs; the secret passes through once, in the registration's answer.
import { GraphQLError } from 'graphql';
import { env, loadConfig } from '../../runtime/config.ts';
import type { IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { createServiceClient, type ServiceCaller } from '../../runtime/service-client.ts';

const DEFAULT_GOVERNANCE_URL = 'http://127.0.0.1:4003/graphql';

export const credentialsSpec = {
  SUBGRAPH_GOVERNANCE_URL: env.urls(
    'GraphQL endpoint of the governance subgraph, which mints agent credentials; several replicas comma-separated',
    ['http', 'https'],
    [DEFAULT_GOVERNANCE_URL],
  ),
};

/** What the registration answer shows of a new credential, the secret this once. */
export interface IssuedCredential {
  keyId: string;
  prefix: string;
  secret: string;
  scopes: string[];
}

/** Who the registration is for: its tenant and subject (kept by governance as createdBy). */
export type RegistrationCaller = Pick<ServiceCaller, 'tenantId' | 'onBehalfOf' | 'requestId'>;

export interface AgentCredentials {
  /** A credential acting as `agentId`; a coded GraphQLError when governance refuses or cannot answer. */
  issue(caller: RegistrationCaller, agentId: string, agentName: string): Promise<IssuedCredential>;
  /** Revokes a credential whose agent could not be stored after all. */
  revoke(caller: RegistrationCaller, keyId: string): Promise<void>;
}

const ISSUE = `mutation IssueAgentCredential($agentId: ID!, $name: String) {
  issueAgentCredential(agentId: $agentId, name: $name) { secret apiKey { id prefix scopes } }
}`;
const REVOKE = 'mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { id } }';

interface IssueAnswer {
  issueAgentCredential: { secret: string; apiKey: { id: string; prefix: string; scopes: string[] } };
}

export function createAgentCredentials(deps: { env: Record<string, string | undefined>; identity: IdentityService; logger: Logger }): AgentCredentials {
  const { SUBGRAPH_GOVERNANCE_URL: urls } = loadConfig(credentialsSpec, deps.env);
  const governance = createServiceClient({
    from: 'agents',
    to: 'governance',
    url: urls.length > 0 ? urls : DEFAULT_GOVERNANCE_URL,
    identity: deps.identity,
    logger: deps.logger,
  });
  return {
    async issue(caller, agentId, agentName) {
      const answer = await governance.query<IssueAnswer>({ ...caller, scopes: ['agents:write'] }, ISSUE, { agentId, name: agentName });
      const { secret, apiKey } = answer.issueAgentCredential;
      return { keyId: apiKey.id, prefix: apiKey.prefix, secret, scopes: apiKey.scopes };
    },
    async revoke(caller, keyId) {
      await governance.query({ ...caller, scopes: ['admin'] }, REVOKE, { id: keyId });
    },
  };
}

/**
 * Governance refused or could not be reached before the agent was stored: the registration did
 * not happen, and the error says so (its code stays governance's, or DEPENDENCY_UNAVAILABLE).
 */
export function notRegistered(err: GraphQLError): GraphQLError {
  // The HTTP status the service client suggests is for a subgraph's own callers: through the
  // gateway the code decides it (REST maps DEPENDENCY_UNAVAILABLE to 503).
  const { http: _status, ...extensions } = err.extensions;
  return new GraphQLError(`The agent was not registered: its credential could not be issued (${err.message})`, {
    extensions: { ...extensions, registered: false },
  });
}
