// `npm run build`: every process as one JavaScript file under dist/, run with plain node and no
// devDependencies (`npm ci --omit=dev`): `npm run serve` (everything in one process, as `npm start`),
// `npm run serve:gateway`, `npm run serve:subgraph -- <name>`. See README "Production".
import { fileURLToPath } from 'node:url';
import { buildBundle, buildGateway } from './build-gateway.ts';

export const BUNDLES = {
  gateway: 'dist/gateway.mjs',
  subgraph: 'dist/subgraph.mjs',
  start: 'dist/start.mjs',
} as const;

const root = (file: string) => fileURLToPath(new URL(`../${file}`, import.meta.url));

const started = performance.now();
const built = await Promise.all([
  buildGateway(root(BUNDLES.gateway)),
  buildBundle('scripts/subgraph.ts', root(BUNDLES.subgraph)),
  buildBundle('scripts/start.ts', root(BUNDLES.start)),
]);
console.log(`built ${built.join(', ')} in ${Math.round(performance.now() - started)} ms`);
