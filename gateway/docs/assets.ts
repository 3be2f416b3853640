import { createReadStream, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The files the documentation pages load, served from the npm packages that ship them (and
 * gateway/docs/static for our own glue). An explicit list, not a folder mount: nothing else in
 * node_modules is reachable over HTTP.
 */

const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
};

function files(urlDir: string, dir: string, names: string[]): [string, string][] {
  return names.map((name) => [`/assets/${urlDir}/${name}`, join(dir, name)]);
}

export const ASSETS: ReadonlyMap<string, string> = new Map([
  ...files('swagger-ui', packageDir('swagger-ui-dist'), ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png']),
  ...files('redoc', join(packageDir('redoc'), 'bundles'), ['redoc.standalone.js']),
  ...files('graphiql', packageDir('graphiql'), ['graphiql.min.js', 'graphiql.min.css']),
  ...files('graphql-ws', join(packageDir('graphql-ws'), 'umd'), ['graphql-ws.min.js']),
  ...files('react', join(packageDir('react'), 'umd'), ['react.production.min.js']),
  ...files('react-dom', join(packageDir('react-dom'), 'umd'), ['react-dom.production.min.js']),
  ...files('docs', STATIC_DIR, ['swagger-init.js', 'graphiql-init.js', 'docs.css']),
]);

/** Streams the asset at this URL path; false when there is none. */
export function sendAsset(res: ServerResponse, urlPath: string, headOnly: boolean): boolean {
  const file = ASSETS.get(urlPath);
  if (!file) return false;
  const size = statSync(file).size;
  const ext = file.slice(file.lastIndexOf('.'));
  res.writeHead(200, {
    'content-type': TYPES[ext] ?? 'application/octet-stream',
    'content-length': String(size),
    // Unversioned URLs: cached briefly, so an upgrade of a package shows up within the hour.
    'cache-control': 'public, max-age=3600',
    'x-content-type-options': 'nosniff',
  });
  if (headOnly) res.end();
  else createReadStream(file).pipe(res);
  return true;
}
