/**
 * What `/` answers: a page for people (what this is, and where everything is) and the same links
 * as JSON for clients that ask for JSON. URLs are absolute, on the host the request came to.
 */

export interface LandingOptions {
  graphqlPath: string;
  ssePath: string;
  graphiql: boolean;
}

export interface LandingLinks {
  name: string;
  description: string;
  graphql: string;
  graphiql: string | null;
  websocket: string;
  sse: string;
  rest: string;
  openapi: string;
  swaggerUi: string;
  redoc: string;
  health: string;
  ready: string;
}

/** A Host header fit to build URLs from (anything else falls back to localhost). */
function hostOf(header: string | undefined): string {
  return header && /^[A-Za-z0-9.[\]:-]{1,255}$/.test(header) ? header : 'localhost';
}

export function landingLinks(hostHeader: string | undefined, options: LandingOptions): LandingLinks {
  const http = `http://${hostOf(hostHeader)}`;
  return {
    name: 'Agent platform supergraph',
    description:
      'The API of an AI-agent control plane: one federated GraphQL graph (queries, mutations, subscriptions) and a REST facade over the same operations.',
    graphql: `${http}${options.graphqlPath}`,
    graphiql: options.graphiql ? `${http}${options.graphqlPath}` : null,
    websocket: `ws://${hostOf(hostHeader)}${options.graphqlPath}`,
    sse: `${http}${options.ssePath}`,
    rest: `${http}/v1/`,
    openapi: `${http}/openapi.json`,
    swaggerUi: `${http}/docs`,
    redoc: `${http}/redoc`,
    health: `${http}/healthz`,
    ready: `${http}/readyz`,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function landingPage(hostHeader: string | undefined, options: LandingOptions): string {
  const l = landingLinks(hostHeader, options);
  const link = (href: string, label: string) => `<a href="${escapeHtml(href)}">${escapeHtml(label)}</a>`;
  const rows: [string, string][] = [
    ['GraphQL (POST, GET)', l.graphql],
    ['GraphQL subscriptions, graphql-ws', l.websocket],
    ['GraphQL subscriptions, Server-Sent Events', l.sse],
    ['REST', l.rest],
    ['OpenAPI 3.1 document', l.openapi],
    ['Health / readiness', `${l.health} · ${l.ready}`],
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(l.name)}</title>
<link rel="stylesheet" href="/assets/docs/docs.css">
</head>
<body class="landing">
<main>
<h1>${escapeHtml(l.name)}</h1>
<p>${escapeHtml(l.description)}</p>
<ul class="landing-links">
${l.graphiql ? `<li>${link(l.graphiql, 'GraphiQL')}: explore the graph, run queries and subscriptions</li>\n` : ''}<li>${link(l.swaggerUi, 'Swagger UI')}: try the REST routes</li>
<li>${link(l.redoc, 'Redoc')}: read the REST reference</li>
<li>${link(l.openapi, 'OpenAPI document')}</li>
</ul>
<table>
${rows.map(([what, url]) => `<tr><th>${escapeHtml(what)}</th><td><code>${escapeHtml(url)}</code></td></tr>`).join('\n')}
</table>
<p>Every request needs credentials: <code>Authorization: Bearer &lt;token&gt;</code> or <code>X-API-Key</code>. Clients asking for JSON get these links as JSON.</p>
</main>
</body>
</html>
`;
}
