// GraphiQL against this gateway's GraphQL endpoint (the page's own path): queries and mutations
// over HTTP, subscriptions over graphql-ws on the same path. A `?query=` in the address opens with
// that operation. The headers typed in GraphiQL (kept across reloads) are sent with every HTTP
// request and, for subscriptions, as the WebSocket's connection parameters.
const params = new URLSearchParams(window.location.search);
const HEADERS_KEY = 'graphiql:headers';

function parseHeaders(text) {
  try {
    const parsed = JSON.parse(text || '{}');
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch {
    return {};
  }
}

// GraphiQL keeps each tab's headers in its tab state (the active tab's are the ones in use); a
// first visit may have them only under the older key, where this page puts the development token.
function savedHeaders() {
  try {
    const state = JSON.parse(window.localStorage.getItem('graphiql:tabState') || 'null');
    const tab = state?.tabs?.[state.activeTabIndex ?? 0];
    if (tab && typeof tab.headers === 'string' && tab.headers.trim() !== '') return parseHeaders(tab.headers);
  } catch {
    // No usable tab state: fall back to the older key.
  }
  return parseHeaders(window.localStorage.getItem(HEADERS_KEY));
}

// A new connection for each subscription after the last one ended, so changed headers apply.
const wsClient = graphqlWs.createClient({
  url: `${window.location.origin.replace(/^http/, 'ws')}${window.location.pathname}`,
  lazy: true,
  lazyCloseTimeout: 0,
  retryAttempts: 0,
  connectionParams: savedHeaders,
});
const fetcher = GraphiQL.createFetcher({ url: window.location.pathname, wsClient });

function render(defaultHeaders) {
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: true,
      ...(defaultHeaders ? { defaultHeaders } : {}),
      ...(params.get('query') ? { query: params.get('query') } : {}),
    }),
  );
}

// Outside production, with the public development secret, the gateway hands out the development
// token (admin of the demo tenant): a first visit starts with it in the headers, ready to run.
if (Object.keys(savedHeaders()).length > 0) {
  render();
} else {
  fetch('/docs/development-token', { headers: { accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : null))
    .then((body) => {
      const headers = body && typeof body.token === 'string' ? JSON.stringify({ authorization: `Bearer ${body.token}` }, null, 2) : undefined;
      if (headers) window.localStorage.setItem(HEADERS_KEY, headers);
      render(headers);
    })
    .catch(() => render());
}
