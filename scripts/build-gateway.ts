// `npm run build`: the gateway as one JavaScript file, dist/gateway.mjs, which `npm run gateway`
// runs with plain node. Under tsx the gateway carried tsx's module-hooks thread (about 30 MB),
// the transpiled sources and the name-keeping helper esbuild adds to every function for tsx
// (bench/README.md measured the difference). The packages stay imports of node_modules; only
// this repository's TypeScript is bundled, with a source map for stack traces.
//
// Modules find their files (the supergraph, REST operations, docs assets, package.json) relative
// to import.meta.url, so each module's import.meta.url is replaced with its source file's URL:
// the bundle reads the same files the sources do, wherever dist/ is.
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/**
 * The node flags `npm run gateway` (package.json) starts the built gateway with, each measured in
 * bench/README.md: stack traces through the source map; @apollo/federation-internals' exports as
 * plain properties (gateway/preload/federation-exports.cjs); and the garbage collector settings
 * (a larger young generation, and an old generation allowed to grow by half of what is live
 * before a full collection instead of up to four times). Paths are relative to the repository.
 */
export const GATEWAY_NODE_ARGS = [
  '--enable-source-maps',
  '--require=./gateway/preload/federation-exports.cjs',
  '--max-semi-space-size=32',
  '--heap-growing-percent=50',
];
export const GATEWAY_BUNDLE = fileURLToPath(new URL('../dist/gateway.mjs', import.meta.url));

const sourceLocations: Plugin = {
  name: 'source-import-meta-url',
  setup(builder) {
    builder.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

/** Builds the bundle (to dist/gateway.mjs unless told otherwise; it must stay inside the repository to find node_modules). */
export async function buildGateway(outfile = GATEWAY_BUNDLE): Promise<string> {
  return buildBundle('gateway/main.ts', outfile);
}

/**
 * Bundles one entry point of this repository the same way (scripts/build.ts builds the
 * subgraphs' and `npm start`'s too): what production runs with plain node, without tsx or
 * esbuild, after `npm ci --omit=dev`.
 */
export async function buildBundle(entry: string, outfile: string): Promise<string> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    // The packages are CommonJS and ESM alike; node resolves them from dist/ as from gateway/.
    banner: { js: `// Built by scripts/build-gateway.ts from ${entry}; do not edit.` },
    plugins: [sourceLocations],
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const file = await buildGateway();
  console.log(`built ${file} in ${Math.round(performance.now() - started)} ms`);
}
