// The typed client shown in the REST reference (docs/rest.md) is the file the contract test runs and tsc checks, verbatim.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';

it('docs/rest.md quotes tests/rest/example-client.ts exactly', () => {
  const readme = readFileSync(join(REPO_ROOT, 'docs/rest.md'), 'utf8');
  const marker = '<!-- tests/rest/example-client.ts -->\n```ts\n';
  const start = readme.indexOf(marker);
  expect(start).toBeGreaterThan(0);
  const block = readme.slice(start + marker.length, readme.indexOf('```', start + marker.length));
  expect(block).toBe(readFileSync(join(REPO_ROOT, 'tests/rest/example-client.ts'), 'utf8'));
});
