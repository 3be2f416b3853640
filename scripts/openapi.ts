// Generates the REST facade's OpenAPI document and client types from gateway/rest/operations and
// schema/supergraph.graphql:
//   npm run openapi           write gateway/rest/generated/openapi.json and openapi-types.ts
//   npm run openapi:check     exit 1 when either checked-in file differs from what would be written
//   npm run openapi:types     write only openapi-types.ts, from the checked-in openapi.json
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { generateArtifacts, generateTypes, OPENAPI_JSON, OPENAPI_TYPES, staleArtifacts } from '../gateway/rest/generate.ts';
import type { OpenApiDocument } from '../gateway/rest/openapi.ts';

const show = (path: string) => relative(process.cwd(), path);

try {
  if (process.argv.includes('--types')) {
    const document = JSON.parse(readFileSync(OPENAPI_JSON, 'utf8')) as OpenApiDocument;
    writeFileSync(OPENAPI_TYPES, await generateTypes(document));
    console.log(`wrote ${show(OPENAPI_TYPES)}`);
  } else if (process.argv.includes('--check')) {
    const stale = await staleArtifacts();
    if (stale.length > 0) {
      console.error(`The OpenAPI document is stale: ${stale.map(show).join(', ')}\nRun \`npm run openapi\` and commit the result.`);
      process.exit(1);
    }
    console.log('openapi: the document and client types are up to date');
  } else {
    const { json, types } = await generateArtifacts();
    writeFileSync(OPENAPI_JSON, json);
    writeFileSync(OPENAPI_TYPES, types);
    console.log(`wrote ${show(OPENAPI_JSON)} and ${show(OPENAPI_TYPES)}`);
  }
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
