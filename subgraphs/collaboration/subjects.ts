// Collaboration asks orchestration whether a task or workflow run exists before opening its
// channel for the first time (runtime/service-client.ts: signed for orchestration with the
// caller's tenant and only tasks:read). Once the channel exists it is not asked again.
import { notFound } from '../../runtime/errors.ts';
import type { IdentityService } from '../../runtime/identity.ts';
import type { Logger } from '../../runtime/logger.ts';
import { createServiceClient } from '../../runtime/service-client.ts';

export interface SubjectLookup {
  tenantId: string;
  onBehalfOf: string | null;
  requestId: string | null;
}

export interface SubjectDirectory {
  /** NOT_FOUND when the tenant has no such task or workflow run; DEPENDENCY_UNAVAILABLE when orchestration cannot answer. */
  assertExists(lookup: SubjectLookup, kind: 'TASK' | 'WORKFLOW_RUN', id: string): Promise<void>;
}

const TASK = /* GraphQL */ `
  query CollaborationTaskExists($id: ID!) {
    task(id: $id) { id }
  }
`;
const RUN = /* GraphQL */ `
  query CollaborationWorkflowRunExists($id: ID!) {
    workflowRun(id: $id) { id }
  }
`;

export function createSubjectDirectory(options: { url: string | readonly string[]; identity: IdentityService; logger: Logger }): SubjectDirectory {
  const client = createServiceClient({ from: 'collaboration', to: 'orchestration', url: options.url, identity: options.identity, logger: options.logger });
  return {
    async assertExists(lookup, kind, id) {
      const caller = { tenantId: lookup.tenantId, onBehalfOf: lookup.onBehalfOf, scopes: ['tasks:read'], requestId: lookup.requestId };
      if (kind === 'TASK') {
        const data = await client.query<{ task: { id: string } | null }>(caller, TASK, { id });
        if (!data.task) throw notFound('Task', id);
      } else {
        const data = await client.query<{ workflowRun: { id: string } | null }>(caller, RUN, { id });
        if (!data.workflowRun) throw notFound('WorkflowRun', id);
      }
    },
  };
}
