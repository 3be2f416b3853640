// Spans for Apollo Server's request pipeline (parse, validate, execute, and each root field's
// resolver), for the gateway and every subgraph. Apollo's hooks run around each phase without
// wrapping it, so these spans sit beside the request's other children rather than above them.
// @apollo/gateway makes its own plan/fetch spans through the global tracer provider.
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { SpanKind, startSpan, tracingEnabled, failed } from './tracing.ts';

/** [] when tracing is off: no hook is registered, so Apollo does no extra work per request. */
export function graphqlTracingPlugins<C extends BaseContext>(): ApolloServerPlugin<C>[] {
  if (!tracingEnabled()) return [];
  const phase = (name: string, attributes: Record<string, string>) => {
    const started = startSpan(name, { kind: SpanKind.INTERNAL, attributes });
    return async (err?: unknown) => {
      if (!started) return;
      if (err) failed(started.span, err);
      started.span.end();
    };
  };
  return [
    {
      async requestDidStart({ request }) {
        const name = request.operationName ?? '';
        return {
          async parsingDidStart() {
            return phase('graphql.parse', { 'graphql.operation.name': name });
          },
          async validationDidStart() {
            const end = phase('graphql.validate', { 'graphql.operation.name': name });
            return async (errors?: readonly Error[]) => end(errors?.[0]);
          },
          async executionDidStart({ operation }) {
            const started = startSpan(`graphql.execute ${operation.operation}${operation.name ? ` ${operation.name.value}` : ''}`, {
              attributes: { 'graphql.operation.type': operation.operation, 'graphql.operation.name': operation.name?.value ?? '' },
            });
            return {
              // Root fields only: their resolvers are the ones that reach storage or other services.
              willResolveField({ info }) {
                if (info.path.prev !== undefined || !started) return;
                const field = startSpan(`resolve ${info.parentType.name}.${info.fieldName}`, {
                  parent: started.context,
                  attributes: { 'graphql.field.path': `${info.parentType.name}.${info.fieldName}` },
                });
                return (error) => {
                  if (!field) return;
                  if (error) failed(field.span, error);
                  field.span.end();
                };
              },
              async executionDidEnd(err) {
                if (!started) return;
                if (err) failed(started.span, err);
                started.span.end();
              },
            };
          },
        };
      },
    },
  ];
}
