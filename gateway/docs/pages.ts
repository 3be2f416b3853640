/**
 * The HTML of the documentation pages. Every script and stylesheet is a local /assets/ URL (see
 * assets.ts) and the Content-Security-Policy below forbids anything else, so the pages work
 * without internet and leak nothing to third parties.
 */

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // Redoc (styled-components) and GraphiQL set styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  // Redoc's search runs in a worker built from a blob.
  "worker-src 'self' blob:",
  "frame-ancestors 'self'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

function page(title: string, head: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" type="image/png" href="/assets/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="/assets/docs/docs.css">
${head}
</head>
<body>
${body}
</body>
</html>
`;
}

export const SWAGGER_UI_PAGE = page(
  'Agent platform REST API · Swagger UI',
  '<link rel="stylesheet" href="/assets/swagger-ui/swagger-ui.css">',
  `<div id="swagger-ui"></div>
<script src="/assets/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/assets/docs/swagger-init.js"></script>`,
);

export const REDOC_PAGE = page(
  'Agent platform REST API · Redoc',
  '',
  `<redoc spec-url="/openapi.json" hide-hostname="true"></redoc>
<script src="/assets/redoc/redoc.standalone.js"></script>`,
);

export const GRAPHIQL_PAGE = page(
  'Agent platform · GraphiQL',
  '<link rel="stylesheet" href="/assets/graphiql/graphiql.min.css">',
  `<div id="graphiql">Loading GraphiQL…</div>
<script src="/assets/react/react.production.min.js"></script>
<script src="/assets/react-dom/react-dom.production.min.js"></script>
<script src="/assets/graphiql/graphiql.min.js"></script>
<script src="/assets/graphql-ws/graphql-ws.min.js"></script>
<script src="/assets/docs/graphiql-init.js"></script>`,
);
