// The Postman collection of the REST API, generated from the OpenAPI document
// (gateway/rest/generated/openapi.json) by openapi-to-postmanv2, with an environment for the local
// stack. Partners import both into Postman; Newman runs the collection in the tests
// (tests/e2e/postman.test.ts) against a running platform.
//   npm run postman              write docs/postman/*.json
//   npm run postman -- --check   exit 1 when they differ from what would be written (CI)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import converter from 'openapi-to-postmanv2';

const root = (file: string) => fileURLToPath(new URL(`../${file}`, import.meta.url));

export const COLLECTION_FILE = 'docs/postman/agent-platform.postman_collection.json';
export const ENVIRONMENT_FILE = 'docs/postman/local.postman_environment.json';

/**
 * Run after every request of the collection: what any answer of the API must be, whatever the
 * placeholders in the request. A server error, or an error that is not a problem document, fails.
 */
const RESPONSE_CHECKS = [
  "pm.test('no server error', function () { pm.expect(pm.response.code).to.be.below(500); });",
  'if (pm.response.code >= 400) {',
  "  pm.test('errors are problem+json', function () {",
  "    pm.expect(pm.response.headers.get('Content-Type')).to.include('application/problem+json');",
  '    var problem = pm.response.json();',
  "    pm.expect(problem).to.have.property('status', pm.response.code);",
  "    pm.expect(problem).to.have.property('type');",
  '  });',
  '}',
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The converter gives every item a random id, and example responses it invents: both dropped (the
 * OpenAPI document and /docs describe the answers), so the output depends on the input only.
 */
const DROPPED = new Set(['id', '_postman_id', 'response']);
function withoutRandomParts(value: Json): Json {
  if (Array.isArray(value)) return value.map(withoutRandomParts);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !DROPPED.has(key))
      .map(([key, v]) => [key, withoutRandomParts(v)]),
  );
}

/** Runs fn with Math.random seeded (mulberry32): values the converter invents where the document has no example are the same every run. */
async function seeded<T>(fn: () => Promise<T>): Promise<T> {
  const random = Math.random;
  let state = 42;
  Math.random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  try {
    return await fn();
  } finally {
    Math.random = random;
  }
}

interface PostmanRequest {
  method: string;
  url: { path?: string[]; query?: { key: string; value: string }[]; variable?: { key: string; value: string }[] };
  header?: { key: string; value: string }[];
  body?: { mode?: string; raw?: string };
}
interface PostmanItem {
  name: string;
  item?: PostmanItem[];
  request?: PostmanRequest;
  event?: Json[];
}
interface OpenApiOperation {
  parameters?: { name: string; in: string; example?: unknown }[];
  requestBody?: { content?: { 'application/json'?: { example?: unknown } } };
}
type OpenApiPaths = Record<string, Record<string, OpenApiOperation>>;

/** `workflow-runs` → `workflowRunId`: the collection variable holding the last id created there. */
function idVariable(resource: string): string {
  const singular = resource.replace(/ies$/, 'y').replace(/s$/, '');
  return `${singular.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())}Id`;
}

/**
 * Every value the converter would invent (faker: random enum members, ids, numbers) replaced by
 * what the OpenAPI document says, so the collection is the same on every run and useful as is:
 * - a create request (POST /v1/<resource>) keeps the new id in a collection variable, and the
 *   requests on /v1/<resource>/{id} use it: run in order (Newman, Postman's runner), the collection
 *   works on what it created;
 * - other path variables are `<name>`; query parameters get their documented example or stay
 *   empty (they are optional and disabled); `Idempotency-Key` is a fresh `{{$guid}}`;
 * - bodies are the operation's documented example where it has one.
 */
function tidy(items: PostmanItem[], paths: OpenApiPaths): void {
  for (const item of items) {
    if (item.item) tidy(item.item, paths);
    const request = item.request;
    const path = request?.url.path;
    if (!request || !path) continue;
    const template = `/${path.map((s) => (s.startsWith(':') ? `{${s.slice(1)}}` : s)).join('/')}`;
    const operation = paths[template]?.[request.method.toLowerCase()];
    const parameters = operation?.parameters ?? [];
    const variable = path[0] === 'v1' && path[1] !== undefined ? idVariable(path[1]) : undefined;
    for (const v of request.url.variable ?? []) v.value = v.key === 'id' && path[2] === ':id' && variable ? `{{${variable}}}` : `<${v.key}>`;
    for (const q of request.url.query ?? []) {
      const [name, property] = q.key.replace(/\]$/, '').split('[');
      const example = parameters.find((p) => p.in === 'query' && p.name === name)?.example;
      const value = property !== undefined && example && typeof example === 'object' ? (example as Record<string, unknown>)[property] : example;
      q.value = value === undefined ? '' : String(value);
    }
    for (const h of request.header ?? []) if (h.key.toLowerCase() === 'idempotency-key') h.value = '{{$guid}}';
    const example = operation?.requestBody?.content?.['application/json']?.example;
    if (example !== undefined && request.body) request.body.raw = JSON.stringify(example, null, 2);
    if (variable && request.method === 'POST' && path.length === 2) {
      const keep = `if (pm.response.code === 201) { pm.collectionVariables.set('${variable}', pm.response.json().id); }`;
      item.event = [...(item.event ?? []), { listen: 'test', script: { type: 'text/javascript', exec: [keep] } }];
    }
  }
}

export async function postmanFiles(): Promise<Record<string, string>> {
  const data = readFileSync(root('gateway/rest/generated/openapi.json'), 'utf8');
  const converted = await seeded(
    () =>
      new Promise<Json>((resolve, reject) =>
        converter.convert(
          { type: 'string', data },
          { folderStrategy: 'Tags', requestParametersResolution: 'Schema', includeAuthInfoInExample: false, enableOptionalParameters: false },
          (err, result) => {
            if (err) return reject(err);
            const output = result?.result ? result.output?.[0] : undefined;
            if (!output) return reject(new Error(`openapi-to-postmanv2: ${result?.reason ?? 'no collection'}`));
            resolve(output.data as Json);
          },
        ),
      ),
  );
  const collection = withoutRandomParts(converted) as { [key: string]: Json };
  tidy(collection.item as unknown as PostmanItem[], (JSON.parse(data) as { paths: OpenApiPaths }).paths);
  collection.info = {
    name: 'Agent platform REST API',
    description: `GENERATED by \`npm run postman\` from the OpenAPI document. Do not edit: regenerate. Import it with ${ENVIRONMENT_FILE}; set its token (npm run -s token).`,
    schema: 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json',
  };
  collection.variable = [];
  collection.auth = { type: 'bearer', bearer: [{ key: 'token', value: '{{token}}', type: 'string' }] };
  collection.event = [{ listen: 'test', script: { type: 'text/javascript', exec: RESPONSE_CHECKS } }];
  const environment = {
    name: 'Agent platform (local)',
    values: [
      { key: 'baseUrl', value: 'http://localhost:4000', type: 'default', enabled: true },
      { key: 'token', value: '', type: 'secret', enabled: true },
    ],
  };
  return { [COLLECTION_FILE]: `${JSON.stringify(collection, null, 2)}\n`, [ENVIRONMENT_FILE]: `${JSON.stringify(environment, null, 2)}\n` };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, text] of Object.entries(await postmanFiles())) {
    if (check) {
      if (!existsSync(root(file)) || readFileSync(root(file), 'utf8') !== text) {
        console.error(`${file} is stale: run \`npm run postman\` and commit it.`);
        stale++;
      }
      continue;
    }
    mkdirSync(root('docs/postman'), { recursive: true });
    writeFileSync(root(file), text);
    console.log(`wrote ${file}`);
  }
  if (stale > 0) process.exit(1);
  if (check) console.log('Postman collection up to date');
}
