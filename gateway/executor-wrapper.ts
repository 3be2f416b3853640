// Cross-cutting checks that must run inside Apollo Server's call to the gateway (variable
// coercion, NUL refusal, access rules) each wrap the gateway's executor; the rest of the gateway
// interface passes through unchanged. One shape for all of them.
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';

/** The gateway with its executor wrapped once it is loaded; `onStop` runs before the gateway stops. */
export function wrapExecutor(gateway: GatewayInterface, wrap: (inner: GatewayExecutor) => GatewayExecutor, onStop?: () => void): GatewayInterface {
  return {
    onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
    async load(loadOptions) {
      const loaded = await gateway.load(loadOptions);
      return { ...loaded, executor: loaded.executor ? wrap(loaded.executor) : null };
    },
    async stop() {
      onStop?.();
      await gateway.stop();
    },
  };
}
