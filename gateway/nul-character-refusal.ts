// Every subgraph's requests from clients pass through the gateway's executor (HTTP, REST, the
// fast path, and queries and mutations over graphql-ws and SSE), so refusing NUL characters here
// covers every subgraph, present and future, before any of them is called: a 400 BAD_USER_INPUT
// naming the argument or variable (runtime/nul-characters.ts says why).
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { findNulCharacter, nulCharacterError } from '../runtime/nul-characters.ts';
import { wrapExecutor } from './executor-wrapper.ts';

export function withNulCharacterRefusal(gateway: GatewayInterface): GatewayInterface {
  const refusing =
    (inner: GatewayExecutor): GatewayExecutor =>
    async (requestContext) => {
      const found = findNulCharacter(requestContext.document, requestContext.request.variables);
      if (found) return { errors: [nulCharacterError(found)] };
      return inner(requestContext);
    };
  return wrapExecutor(gateway, refusing);
}
