// Where the consumer-driven contracts live and how a consumer test writes its pact: to a temporary
// folder, then compared with the one checked in under pacts/ (the provider verifies those), so a
// change of what a consumer expects is a reviewed change of a file. PACT_UPDATE=1 rewrites them.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACTS_DIR = fileURLToPath(new URL('../../pacts/', import.meta.url));
export const PROVIDER = 'agent-platform-gateway';

// Pact's library reports usage to its makers unless told not to; tests never call out.
process.env.PACT_DO_NOT_TRACK = 'true';

export function pactOutputDir(): string {
  return mkdtempSync(join(tmpdir(), 'pact-'));
}

/** The pact a consumer test wrote, without the parts that name the library's versions. */
function comparable(file: string): unknown {
  const pact = JSON.parse(readFileSync(file, 'utf8')) as { metadata?: unknown };
  pact.metadata = undefined;
  return pact;
}

/** Checks (or with PACT_UPDATE=1 rewrites) pacts/<consumer>-<provider>.json against what the test wrote. */
export function checkPact(outputDir: string, consumer: string): { written: unknown; checkedIn: unknown; file: string } {
  const name = `${consumer}-${PROVIDER}.json`;
  const written = join(outputDir, name);
  const checkedIn = join(PACTS_DIR, name);
  if (process.env.PACT_UPDATE === '1') writeFileSync(checkedIn, readFileSync(written));
  return { written: comparable(written), checkedIn: comparable(checkedIn), file: checkedIn };
}

export const EXAMPLE_AGENT_ID = '5b1f2a4e-7c3d-4e8f-9a0b-1c2d3e4f5a6b';
export const EXAMPLE_TASK_ID = '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f';
