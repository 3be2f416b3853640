// A2A v1.0 Agent Cards: built from the agent's profile and discovery's settings, optionally signed
// with this node's key (a detached JWS over the card's canonical JSON, A2A AgentCardSignature),
// and verified when a peer's card is imported.
import { flattenedVerify, FlattenedSign, importJWK, type JWK } from 'jose';
import { createLocalJWKSet } from 'jose';
import type { AgentProfile, ListingSettings } from './domain.ts';

export const A2A_PROTOCOL_VERSION = '1.0';

/** Keys sorted at every level, no whitespace (RFC 8785 for the JSON a card holds: strings, finite numbers, booleans, null). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export type AgentCard = Record<string, unknown>;

/** The A2A v1.0 card of an agent (without signatures). */
export function buildCard(p: AgentProfile, s: ListingSettings): AgentCard {
  const interfaces = [
    ...(p.endpointUrl ? [{ url: p.endpointUrl, protocolBinding: 'JSONRPC', protocolVersion: A2A_PROTOCOL_VERSION }] : []),
    ...s.interfaces.filter((i) => !(i.url === p.endpointUrl && i.protocolBinding === 'JSONRPC')),
  ];
  const card: AgentCard = {
    name: p.name,
    description: p.description ?? '',
    version: p.agentVersion,
    supportedInterfaces: interfaces,
    capabilities: { streaming: p.capabilities.streaming, pushNotifications: p.capabilities.pushNotifications, extendedAgentCard: false },
    defaultInputModes: p.defaultInputModes,
    defaultOutputModes: p.defaultOutputModes,
    skills: p.skills.map((k) => ({
      id: k.id,
      name: k.name,
      description: k.description ?? '',
      tags: k.tags,
      ...(k.examples.length ? { examples: k.examples } : {}),
      ...(k.inputModes.length ? { inputModes: k.inputModes } : {}),
      ...(k.outputModes.length ? { outputModes: k.outputModes } : {}),
    })),
  };
  if (p.provider) card.provider = { organization: p.provider.organization, ...(p.provider.url ? { url: p.provider.url } : {}) };
  if (Object.keys(s.securitySchemes).length) card.securitySchemes = s.securitySchemes;
  if (s.securityRequirements.length) card.securityRequirements = s.securityRequirements;
  if (s.documentationUrl) card.documentationUrl = s.documentationUrl;
  if (s.iconUrl) card.iconUrl = s.iconUrl;
  return card;
}

/** This node's signing key: a private JWK (EC P-256 → ES256, OKP Ed25519 → EdDSA) with a kid. */
export interface CardSigner {
  kid: string;
  alg: string;
  publicJwk: JWK;
  sign(card: AgentCard): Promise<AgentCard>;
}

export async function createCardSigner(privateJwkJson: string): Promise<CardSigner> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(privateJwkJson) as JWK;
  } catch {
    throw new Error('DISCOVERY_SIGNING_KEY must be a private JWK in JSON');
  }
  const alg = jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? 'EdDSA' : null;
  if (!alg || !jwk.d) throw new Error('DISCOVERY_SIGNING_KEY must be a private EC P-256 or Ed25519 JWK (with "d")');
  const kid = jwk.kid ?? 'discovery-1';
  const key = await importJWK({ ...jwk, alg }, alg);
  const { d: _d, ...rest } = jwk;
  const publicJwk: JWK = { ...rest, kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    publicJwk,
    async sign(card) {
      const { signatures: _drop, ...unsigned } = card;
      const jws = await new FlattenedSign(new TextEncoder().encode(canonicalJson(unsigned))).setProtectedHeader({ alg, kid, typ: 'JOSE' }).sign(key);
      return { ...unsigned, signatures: [{ protected: jws.protected, signature: jws.signature }] };
    },
  };
}

export interface Verification {
  signed: boolean;
  verified: boolean;
  keyId: string | null;
  error: string | null;
}

/** Checks a card's signatures (detached JWS over its canonical JSON without `signatures`) against a JWKS: verified when one does. */
export async function verifyCard(card: unknown, jwks: { keys: JWK[] } | null): Promise<Verification> {
  if (card === null || typeof card !== 'object' || Array.isArray(card)) return { signed: false, verified: false, keyId: null, error: 'not a JSON object' };
  const { signatures, ...unsigned } = card as Record<string, unknown>;
  if (!Array.isArray(signatures) || signatures.length === 0) return { signed: false, verified: false, keyId: null, error: null };
  if (!jwks || jwks.keys.length === 0) return { signed: true, verified: false, keyId: null, error: 'no keys to verify with' };
  // Detached: the payload is the card itself, base64url-encoded as JWS signing input.
  const payload = Buffer.from(canonicalJson(unsigned)).toString('base64url');
  const keys = createLocalJWKSet(jwks);
  let error = 'no signature verified';
  for (const s of signatures as { protected?: unknown; signature?: unknown; header?: unknown }[]) {
    if (typeof s?.protected !== 'string' || typeof s.signature !== 'string') continue;
    try {
      const result = await flattenedVerify({ protected: s.protected, signature: s.signature, payload }, keys);
      return { signed: true, verified: true, keyId: (result.protectedHeader?.kid as string | undefined) ?? null, error: null };
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
  }
  return { signed: true, verified: false, keyId: null, error };
}
