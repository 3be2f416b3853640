// Runs one subgraph as its own process: `npm run subgraph -- agents`.
import { ConfigError } from '../runtime/config.ts';
import { closeSqliteNow } from '../runtime/db.ts';
import { createLogger } from '../runtime/logger.ts';
import { stopOnSignals } from '../runtime/shutdown-signals.ts';
import { subgraphs } from '../subgraphs/index.ts';

const name = process.argv[2];
const def = name ? subgraphs[name] : undefined;
if (!def) {
  console.error(`usage: npm run subgraph -- <name>\nknown subgraphs: ${Object.keys(subgraphs).join(', ')}`);
  process.exit(2);
}
try {
  const running = await def.start();
  stopOnSignals(createLogger(def.name, process.env.LOG_LEVEL ?? 'info'), () => running.stop(), { beforeForcedExit: closeSqliteNow });
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `${def.name} failed to start: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
