// GraphiQL against this gateway's GraphQL endpoint (the page's own path). A `?query=` in the
// address opens with that operation.
const params = new URLSearchParams(window.location.search);
const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    // Headers ({"authorization": "Bearer …"}, the token npm start prints) are kept across reloads.
    shouldPersistHeaders: true,
    ...(params.get('query') ? { query: params.get('query') } : {}),
  }),
);
