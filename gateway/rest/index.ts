import type { ApolloGateway } from '@apollo/gateway';
import type { GraphQLSchema } from 'graphql';
import { stringify as toYaml } from 'yaml';
import type { Route } from '../../runtime/http.ts';
import { loadOperations, type OperationSet } from './operations.ts';
import { generateOpenApi, serialiseDocument } from './openapi.ts';
import { handleRestRequest, type RouterDeps, type RuntimeRoute } from './router.ts';
import { RouteTable } from './route-table.ts';
import { SchemaValidator } from './validation.ts';

/**
 * The REST/OpenAPI facade of the gateway: routes from gateway/rest/operations, compiled against
 * the supergraph's API schema and recompiled whenever the gateway loads a new one, plus the
 * generated document at /openapi.json and /openapi.yaml.
 */

export interface RestFacadeOptions extends RouterDeps {
  gateway: ApolloGateway;
  /** Defaults to the files in gateway/rest/operations. */
  operations?: OperationSet;
}

export interface RestFacade {
  route: Route;
  /** Whether a request path belongs to the facade (its errors are problem+json). */
  owns(pathname: string): boolean;
  /** The document served now. */
  document(): Record<string, unknown>;
  close(): void;
}

interface Published {
  table: RouteTable<RuntimeRoute>;
  json: string;
  yaml(): string;
  document: Record<string, unknown>;
}

function memo<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}

/** Runs on every schema load, in the gateway's swap: the costly parts (ajv, YAML) wait for first use. */
function publish(schema: GraphQLSchema, operations: OperationSet): Published & { problems: string[] } {
  const { compiled, document, problems } = generateOpenApi(schema, operations, { checkExamples: false });
  const validator = memo(() => new SchemaValidator(compiled.components));
  const entries: RuntimeRoute[] = compiled.routes.map((model) => ({
    method: model.declaration.method,
    path: model.declaration.path,
    declaration: model.declaration,
    model,
    unavailableReasons: [],
    validators: memo(() => ({
      parameters: new Map(model.parameters.map((p) => [p.name, validator().compile(p.schema)])),
      body: model.body ? validator().compile(model.body.schema) : undefined,
    })),
  }));
  // Routes that do not fit keep their path, so clients get a 503 that says why, not a 404.
  for (const { declaration, reasons } of compiled.unavailable) {
    entries.push({
      method: declaration.method,
      path: declaration.path,
      declaration,
      model: undefined,
      unavailableReasons: reasons,
      validators: () => ({ parameters: new Map(), body: undefined }),
    });
  }
  return {
    table: new RouteTable(entries),
    json: serialiseDocument(document),
    yaml: memo(() => toYaml(document, { aliasDuplicateObjects: false, lineWidth: 0 })),
    document,
    problems,
  };
}

export function createRestFacade(options: RestFacadeOptions): RestFacade {
  const operations = options.operations ?? loadOperations();
  const initial = options.gateway.schema;
  if (!initial) throw new Error('the REST facade needs the gateway to have loaded its supergraph (create it after apollo.start())');

  const load = (schema: GraphQLSchema): Published => {
    const started = performance.now();
    const next = publish(schema, operations);
    for (const problem of next.problems) options.logger.error({ problem }, 'REST route unavailable with the loaded supergraph');
    options.logger.info({ routes: next.table.size, problems: next.problems.length, ms: Math.round(performance.now() - started) }, 'REST routes compiled');
    return next;
  };
  let current = load(initial);
  const unsubscribe = options.gateway.onSchemaLoadOrUpdate(({ apiSchema }) => {
    try {
      current = load(apiSchema);
    } catch (err) {
      // Keep serving the routes compiled for the previous schema.
      options.logger.error({ err }, 'REST routes could not be compiled for the new supergraph; keeping the previous ones');
    }
  });

  const route: Route = async (req, res, info) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/openapi.json' || url.pathname === '/openapi.yaml') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const json = url.pathname.endsWith('.json');
      const text = json ? current.json : current.yaml();
      res.writeHead(200, {
        'content-type': json ? 'application/json; charset=utf-8' : 'application/yaml; charset=utf-8',
        'content-length': String(Buffer.byteLength(text)),
        'cache-control': 'no-cache',
      });
      res.end(req.method === 'HEAD' ? undefined : text);
      return true;
    }
    return handleRestRequest(options, current.table, req, res, info, url);
  };
  return {
    route,
    owns: (pathname) => current.table.prefixes.has(pathname.split('/')[1] ?? ''),
    document: () => current.document,
    close: unsubscribe,
  };
}
