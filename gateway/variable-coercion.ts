// Bad variables are a request error, whoever sends them. The access rules (auth/secured-gateway.ts)
// run before the gateway's executor, which is where variables are coerced: a caller denied every
// field never got that far, so an anonymous caller with invalid variables was told 200
// UNAUTHENTICATED while an authenticated one got 400 BAD_USER_INPUT. Coercing first, as Apollo
// Server does for a plain schema, answers both alike. The errors are graphql-js's own (with the
// variable's definition as their node), so Apollo turns them into BAD_USER_INPUT with status 400.
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { getVariableValues } from 'graphql';
import { wrapExecutor } from './executor-wrapper.ts';

export function withVariableCoercion(gateway: GatewayInterface): GatewayInterface {
  const coercing =
    (inner: GatewayExecutor): GatewayExecutor =>
    async (requestContext) => {
      const definitions = requestContext.operation?.variableDefinitions;
      if (definitions && definitions.length > 0) {
        const coerced = getVariableValues(requestContext.schema, definitions, requestContext.request.variables ?? {}, { maxErrors: 50 });
        if (coerced.errors) return { errors: coerced.errors };
      }
      return inner(requestContext);
    };
  return wrapExecutor(gateway, coercing);
}
