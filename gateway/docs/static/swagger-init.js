// Swagger UI for the REST facade. validatorUrl: null keeps it from sending the document to
// validator.swagger.io: these pages work offline and talk to this gateway only.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  // The token given under "Authorize" survives a reload of the page.
  persistAuthorization: true,
});
