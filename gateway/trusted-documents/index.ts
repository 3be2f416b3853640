// Trusted documents (TRUSTED_DOCUMENTS=enforce): only registered operations run, the REST
// facade's and those of the client manifests, on every transport. See README "Security".
export {
  createRegistry,
  documentIdOf,
  resolveTrustedDocument,
  TRUSTED_DOCUMENT_CODES,
  TRUSTED_DOCUMENTS_MODES,
  type DocumentRequest,
  type TrustedDocument,
  type TrustedDocumentRegistry,
  type TrustedDocumentsMode,
} from './documents.ts';
export { loadTrustedDocuments, trustedDocumentsSpec, type TrustedDocuments } from './config.ts';
export { subscriptionDocumentGate, trustedDocumentsPlugin, type DocumentGate } from './gate.ts';
export {
  buildManifest,
  checkManifest,
  MANIFEST_FORMAT,
  ManifestBuildError,
  type ManifestOperation,
  type OperationSource,
  type PersistedQueryManifest,
} from './manifest.ts';
