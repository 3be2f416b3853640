// API key material. A key is `ap_<prefix>_<secret>`: the prefix (16 hex characters) finds the
// row and is safe to show; the secret (32 random bytes, base64url) is shown once and stored only
// as a SHA-256 hash. A plain hash is enough here (no salt, no slow KDF): the secret has 256 bits
// of entropy, so there is no dictionary to precompute and nothing to brute-force.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

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
