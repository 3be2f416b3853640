import type { HeaderMap } from '@apollo/server';
import type { Logger } from '../runtime/logger.ts';
import type { RequestInfo } from '../runtime/http.ts';

/**
 * Per-request state of the gateway. The data sources read it to pass the request id and the
 * client's headers on to the subgraphs.
 */
export interface GatewayContext {
  requestId: string;
  /** The client request's headers, names lower-cased. */
  headers: HeaderMap;
  logger: Logger;
}

export function createGatewayContext(info: RequestInfo, logger: Logger): GatewayContext {
  return { requestId: info.requestId, headers: info.headers, logger: logger.child({ requestId: info.requestId }) };
}
