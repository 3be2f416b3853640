// API key rules: what a key may be created with, when its use is recorded, who it acts as, and
// the key material itself. Pure: no I/O, time is passed in.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { badInput } from '../../runtime/errors.ts';
import { AGENT_SCOPES, PLATFORM_SCOPES } from '../../runtime/identity.ts';
import { intInRange, optionalText, text } from '../../runtime/validate.ts';

export const LIMITS = {
  name: 100,
  scopes: 20,
  /** Active (not revoked) keys per tenant: a leaked admin token cannot mint keys without bound. */
  activeKeysPerTenant: 100,
  /**
   * Active credentials per agent. Agent credentials do not count against activeKeysPerTenant (a
   * tenant has as many agents as it likes), so each agent has its own bound; rotation normally
   * leaves one, two during an overlap.
   */
  activeCredentialsPerAgent: 10,
  /** Longest a rotated-out credential may keep working beside its successor: 7 days. */
  overlapSeconds: 7 * 24 * 3600,
} as const;

/** lastUsedAt is written at most this often per key, so a busy key does not write on every request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

export const ApiKeyCreated = 'ApiKeyCreated';
export const ApiKeyRevoked = 'ApiKeyRevoked';

export interface ApiKeyCreatedPayload extends Record<string, unknown> {
  keyId: string;
  name: string;
  scopes: string[];
  prefix: string;
  createdBy: string | null;
  /** Set for an agent credential. */
  agentId: string | null;
}

export interface ApiKeyRevokedPayload extends Record<string, unknown> {
  keyId: string;
  revokedBy: string | null;
  /** From when the key is refused: later than the event while a rotation's overlap runs. */
  revokedAt: string;
}

export interface CreateApiKeyInput {
  name: string;
  scopes: readonly string[];
}

export interface ApiKeyDraft {
  name: string;
  /** Known platform scopes, deduplicated and sorted. */
  scopes: string[];
}

const KNOWN: ReadonlySet<string> = new Set(PLATFORM_SCOPES);

export function normaliseCreateInput(input: CreateApiKeyInput, field = 'input'): ApiKeyDraft {
  const name = text(input.name, `${field}.name`, { min: 1, max: LIMITS.name });
  if (input.scopes.length === 0) throw badInput(`${field}.scopes must list at least one scope`, { field: `${field}.scopes` });
  if (input.scopes.length > LIMITS.scopes) throw badInput(`${field}.scopes must have at most ${LIMITS.scopes} items`, { field: `${field}.scopes` });
  input.scopes.forEach((scope, i) => {
    if (!KNOWN.has(scope)) {
      throw badInput(`${field}.scopes[${i}] "${scope.slice(0, 64)}" is not a scope; known scopes: ${PLATFORM_SCOPES.join(', ')}`, {
        field: `${field}.scopes[${i}]`,
      });
    }
  });
  return { name, scopes: [...new Set(input.scopes)].sort() };
}

// ---------------------------------------------------------------------------------------------
// Agent credentials: API keys bound to an agent, acting as it (verifyApiKey answers its agentId)
// with AGENT_SCOPES and nothing else, whoever minted them.

/** The fixed scopes of every agent credential. */
export const AGENT_CREDENTIAL_SCOPES: string[] = [...AGENT_SCOPES].sort();

/** What an agent credential is called: the agent's name when the agents subgraph gave it. */
export function agentCredentialName(agentName: string | null | undefined): string {
  const name = optionalText(agentName, 'name', 10_000);
  const full = name ? `Agent credential: ${name}` : 'Agent credential';
  return full.length > LIMITS.name ? `${full.slice(0, LIMITS.name - 1)}…` : full;
}

/** Seconds the old credentials keep working after a rotation: 0 (at once) to 7 days. */
export function normaliseOverlap(seconds: number | null | undefined, argument = 'overlapSeconds'): number {
  return seconds === null || seconds === undefined ? 0 : intInRange(seconds, argument, 0, LIMITS.overlapSeconds);
}

/**
 * A key's revokedAt is the instant it is refused from: null (never), past (revoked) or, while a
 * rotation's overlap runs, future. A key is usable at `now` when that instant has not come.
 */
export function activeAt(revokedAt: string | null, now: string): boolean {
  return revokedAt === null || revokedAt > now;
}

/** Use older than this instant is recorded again; newer use is already recorded closely enough. */
export function lastUsedThreshold(now: Date): string {
  return new Date(now.getTime() - LAST_USED_RESOLUTION_MS).toISOString();
}

export function subjectOfKey(keyId: string): string {
  return `apikey:${keyId}`;
}

// API key material. A key is `ap_<prefix>_<secret>`: the prefix (16 hex characters) finds the
// row and is safe to show; the secret (32 random bytes, base64url) is shown once and stored only
// as a SHA-256 hash. A plain hash is enough here (no salt, no slow KDF): the secret has 256 bits
// of entropy, so there is no dictionary to precompute and nothing to brute-force.
const FORMAT = /^ap_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface KeyMaterial {
  /** The whole key, given to the creator once. */
  key: string;
  prefix: string;
  hash: string;
}

export function generateKey(): KeyMaterial {
  const prefix = randomBytes(8).toString('hex');
  const key = `ap_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, hash: hashKey(key) };
}

/** The prefix of a well-formed key; null for anything else, before any lookup. */
export function prefixOf(key: string): string | null {
  return FORMAT.exec(key)?.[1] ?? null;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of the presented key's hash with the stored one. */
export function keyMatches(key: string, storedHash: string): boolean {
  const presented = Buffer.from(hashKey(key), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** How a key is shown after creation: enough to recognise it, nothing to use it. */
export function displayPrefix(prefix: string): string {
  return `ap_${prefix}`;
}
