// Runs the gateway as its own process: `npm run gateway`.
import { ConfigError } from '../runtime/config.ts';
import { stopOnSignals } from '../runtime/shutdown-signals.ts';
import { startGateway } from './server.ts';
import { SelfCheckError } from './self-check.ts';
import { SupergraphFileError } from './supergraph.ts';

try {
  const running = await startGateway();
  stopOnSignals(running.logger, () => running.stop());
} catch (err) {
  if (err instanceof ConfigError || err instanceof SupergraphFileError || err instanceof SelfCheckError) console.error(err.message);
  else console.error(`gateway failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
}
