// Fails when a generated file differs from what `npm run codegen` would write now, so a schema
// change without regeneration cannot land.
import { readFileSync, existsSync } from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import config from '../codegen.ts';

const outputs: { filename: string; content: string }[] = await generate({ ...config, silent: true }, false);
const stale = outputs.filter((o) => !existsSync(o.filename) || readFileSync(o.filename, 'utf8') !== o.content);
if (stale.length > 0) {
  console.error(`Generated files are stale: ${stale.map((o) => o.filename).join(', ')}\nRun \`npm run codegen\` and commit the result.`);
  process.exit(1);
}
console.log(`codegen: ${outputs.length} generated file(s) up to date`);
