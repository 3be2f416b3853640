// A document whose operationName names none of its operations (or that has several operations
// and no name) is the client's mistake. Apollo Server leaves it to the executor to say so, which
// for a gateway means the request reaches the access rules and the query planner without an
// operation and fails as an internal error (HTTP 500, two error log lines). This refuses it where
// Apollo resolves the operation, with the code and status graphql-ws and SSE already answer
// (runtime/subscriptions.ts checkOperation): 400 OPERATION_RESOLUTION_FAILURE.
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { GraphQLError } from 'graphql';

/** The message graphql-js gives for the same mistake, so every transport says the same. */
export function operationResolutionMessage(operationName: string | null | undefined): string {
  return operationName ? `Unknown operation named "${operationName}".` : 'Must provide operation name if query contains multiple operations.';
}

export function operationResolutionPlugin<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, request }) {
          // Apollo's types promise an operation here; at run time it is undefined when none matched.
          if (operation) return;
          throw new GraphQLError(operationResolutionMessage(request.operationName), {
            extensions: { code: 'OPERATION_RESOLUTION_FAILURE', http: { status: 400 } },
          });
        },
      };
    },
  };
}
