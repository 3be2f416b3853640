// Free TCP ports on the loopback, for the processes that tests and benchmarks start.
//
// Asking the OS for port 0 and handing the number to a child process is a race: between our
// probe closing and the child binding, another test worker may be handed the same port (or use it
// as the local port of an outgoing connection), and a readiness probe then reaches the wrong
// process (seen in CI: a gateway's URL answered by another test's subgraph). So ports come from
// below Linux's ephemeral range (32768 and up, which port 0 and outgoing connections use), each
// vitest worker from its own block, and each is still checked free before it is handed out.
import { createServer } from 'node:net';

const FIRST = 20_000;
const BLOCK = 1_500; // ports per vitest worker; a test file uses a few dozen at most
const OUTSIDE_VITEST = { first: 28_000, size: 4_000 }; // benchmarks and scripts

function range(): { first: number; size: number } {
  const pool = Number(process.env.VITEST_POOL_ID);
  if (Number.isInteger(pool) && pool >= 1 && FIRST + pool * BLOCK <= OUTSIDE_VITEST.first) return { first: FIRST + (pool - 1) * BLOCK, size: BLOCK };
  return OUTSIDE_VITEST;
}

// Files of one worker run one after another, each with fresh module state: a random start keeps
// the next file off ports whose processes the previous one may still be closing.
let next: number | undefined;

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function getFreePort(): Promise<number> {
  const { first, size } = range();
  next ??= Math.floor(Math.random() * size);
  for (let tries = 0; tries < size; tries++) {
    const port = first + (next % size);
    next += 1;
    if (await isFree(port)) return port;
  }
  throw new Error(`no free port in ${first}-${first + size - 1}`);
}
