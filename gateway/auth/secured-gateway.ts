// The execution core with field-level access control: an ApolloGateway wrapped so every
// operation is authorized (enforce.ts) before it is planned, and the denials are applied to its
// result. Everything that executes through Apollo Server (GraphQL over HTTP, the REST facade's
// executeOperation) gets it by passing the wrapped gateway to `new ApolloServer({ gateway })`.
import { createHash } from 'node:crypto';
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { getOperationAST, GraphQLError, print, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { applyDenials, createAuthorizer } from './enforce.ts';
import type { Principal } from './principal.ts';
import { extractAccessPolicy, type AccessPolicy } from './supergraph-policy.ts';
import { wrapExecutor } from '../executor-wrapper.ts';

export interface AccessControlOptions {
  /** The caller of a request, from the context the transport built. */
  principalOf(context: Record<string, unknown>): Principal;
}

export function withAccessControl(gateway: GatewayInterface, options: AccessControlOptions): GatewayInterface {
  let policy: AccessPolicy | undefined;
  const unsubscribe = gateway.onSchemaLoadOrUpdate(({ coreSupergraphSdl }) => {
    policy = extractAccessPolicy(coreSupergraphSdl);
  });

  // Per document, operation and scope set (enforce.ts); so the rewritten documents are the same
  // objects request after request, and what is derived from them is kept with them.
  const authorize = createAuthorizer();
  const prepared = new WeakMap<DocumentNode, { operation: OperationDefinitionNode | null | undefined; source: string; queryHash: string }>();
  const prepare = (document: DocumentNode, operationName: string | null | undefined) => {
    let entry = prepared.get(document);
    if (!entry) {
      const source = print(document);
      // The gateway caches query plans by queryHash: the rewritten operation must have its own,
      // or a plan made for one caller (with the fields it may see) would serve another.
      entry = { operation: getOperationAST(document, operationName), source, queryHash: createHash('sha256').update(source).digest('hex') };
      prepared.set(document, entry);
    }
    return entry;
  };

  const secured =
    (inner: GatewayExecutor): GatewayExecutor =>
    async (requestContext) => {
      // Fails closed: without the rules, nothing runs.
      if (!policy) throw new GraphQLError('Access rules not loaded yet', { extensions: { code: 'SERVICE_UNAVAILABLE' } });
      const authorization = authorize({
        schema: requestContext.schema,
        policy,
        document: requestContext.document,
        operationName: requestContext.operationName,
        variables: requestContext.request.variables ?? null,
        principal: options.principalOf(requestContext.context),
      });
      if (!authorization.rewritten) return inner(requestContext);
      if (!authorization.document) return applyDenials({ data: {} }, authorization);
      const document = authorization.document;
      const { operation, source, queryHash } = prepare(document, requestContext.operationName);
      if (!operation) throw new GraphQLError('The authorized operation is missing', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      const result = await inner({ ...requestContext, document, operation, source, queryHash });
      return applyDenials(result, authorization);
    };

  return wrapExecutor(gateway, secured, unsubscribe);
}
