import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from '../../runtime/http.ts';
import { sendAsset } from './assets.ts';
import { sendJson } from '../../runtime/http.ts';
import { landingLinks, landingPage } from './landing.ts';
import { CONTENT_SECURITY_POLICY, GRAPHIQL_PAGE, REDOC_PAGE, SWAGGER_UI_PAGE } from './pages.ts';

/**
 * Interactive documentation, all served locally: Swagger UI at /docs, Redoc at /redoc (both over
 * /openapi.json), and GraphiQL at the GraphQL path for browsers (a GET that prefers HTML; API
 * clients asking for JSON reach GraphQL as before).
 */

/** The q-value the Accept header gives a media type (exact, type/*, or *\/*), 0 when absent. */
function quality(accept: string, type: string): number {
  const [major] = type.split('/');
  let best = -1;
  let bestSpecificity = -1;
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.trim().toLowerCase().split(';');
    const specificity = range === type ? 2 : range === `${major}/*` ? 1 : range === '*/*' ? 0 : -1;
    if (specificity < 0 || specificity < bestSpecificity) continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = q ? Number(q.slice(2)) : 1;
    if (specificity > bestSpecificity || value > best) {
      best = Number.isFinite(value) ? value : 0;
      bestSpecificity = specificity;
    }
  }
  return Math.max(best, 0);
}

/** A browser navigating here (text/html ranked above JSON), not an API client. */
export function prefersHtml(headers: IncomingHttpHeaders): boolean {
  const accept = headers.accept ?? '';
  const html = quality(accept, 'text/html');
  const json = Math.max(quality(accept, 'application/json'), quality(accept, 'application/graphql-response+json'));
  return html > 0 && html > json;
}

const PAGES: Record<string, string> = {
  '/docs': SWAGGER_UI_PAGE,
  '/docs/': SWAGGER_UI_PAGE,
  '/redoc': REDOC_PAGE,
  '/redoc/': REDOC_PAGE,
};

/** Where GraphiQL gets the development token it fills in (see DocsOptions.developmentToken). */
export const DEVELOPMENT_TOKEN_PATH = '/docs/development-token';

export interface DocsOptions {
  graphqlPath?: string;
  graphiql?: boolean;
  /** The SSE endpoint, listed on the landing page. */
  ssePath?: string;
  /**
   * Mints the development token (admin of the demo tenant) for GraphiQL's headers. Only given
   * outside production while the public development secret signs user tokens: anyone can mint
   * that token anyway (`npm run token`), so handing it out gives nothing away.
   */
  developmentToken?: () => Promise<string>;
}

export function createDocsRoute(options: DocsOptions = {}): Route {
  const graphqlPath = options.graphqlPath ?? '/graphql';
  const graphiql = options.graphiql ?? true;
  const links = { graphqlPath, ssePath: options.ssePath ?? `${graphqlPath}/stream`, graphiql };
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const headOnly = req.method === 'HEAD';
    if (path.startsWith('/assets/')) return sendAsset(res, path, headOnly);
    if (path === DEVELOPMENT_TOKEN_PATH) {
      if (!options.developmentToken) return false;
      sendJson(res, 200, {
        token: await options.developmentToken(),
        note: 'development only: admin of the demo tenant, signed with the public development secret',
      });
      return true;
    }
    if (path === '/' && !prefersHtml(req.headers)) {
      sendJson(res, 200, landingLinks(req.headers.host, links));
      return true;
    }
    const html =
      path === '/'
        ? landingPage(req.headers.host, links)
        : (PAGES[path] ?? (graphiql && path === graphqlPath && prefersHtml(req.headers) ? GRAPHIQL_PAGE : undefined));
    if (html === undefined) return false;
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(Buffer.byteLength(html)),
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    });
    res.end(headOnly ? undefined : html);
    return true;
  };
}
