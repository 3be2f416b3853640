// Working memory: an agent's scratchpad. JSON values under keys in the memory namespaces, with an
// optional expiry, compare-and-set on a version and atomic increments. Who may read or write a
// namespace is decided as for memories (an agent its own, shared ones with memory:shared).
import { env } from '../../../runtime/config.ts';
import { badInput, domainError } from '../../../runtime/errors.ts';
import { namespacePath } from '../domain.ts';

export const workingMemorySpec = {
  MEMORY_WORKING_MAX_VALUE_BYTES: env.int('largest working-memory value (its JSON), in bytes', 65_536, 2),
  MEMORY_WORKING_MAX_TTL_SECONDS: env.int('longest working-memory expiry (ttlSeconds), in seconds', 31_536_000, 1),
};

export interface WorkingMemoryLimits {
  maxValueBytes: number;
  maxTtlSeconds: number;
}

/** An entry as stored and answered; value is JSON text until a resolver parses it. */
export interface WorkingMemoryEntryRow {
  namespace: string;
  key: string;
  valueJson: string;
  /** 1 for a new entry (or one written after it expired), then +1 per write. */
  version: number;
  expiresAt: string | null;
  updatedAt: string;
}

/** A write's condition: any version, the entry must be absent (0), or it must be at this version. */
export type ExpectedVersion = number | null;

const KEY_MAX = 256;
/** Increments stay exact: JSON integers beyond this lose digits in most clients. */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export function entryKey(value: string): string {
  if (value.length === 0 || value.length > KEY_MAX) throw badInput(`key must have 1 to ${KEY_MAX} characters`, { field: 'key' });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(value)) throw badInput('key must not contain control characters', { field: 'key' });
  return value;
}

export function entryNamespace(value: string): string {
  return namespacePath(value, 'namespace');
}

/** The value as JSON text within the size limit (null is a value: use delete to remove one). */
export function encodeValue(value: unknown, limits: WorkingMemoryLimits): string {
  if (value === undefined) throw badInput('value is required', { field: 'value' });
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json);
  if (bytes > limits.maxValueBytes)
    throw badInput(`value is ${bytes} bytes of JSON; at most ${limits.maxValueBytes}`, { field: 'value', limit: limits.maxValueBytes });
  return json;
}

/** Expiry instant of a write, or null for none. */
export function expiryOf(ttlSeconds: number | null | undefined, now: number, limits: WorkingMemoryLimits): string | null {
  if (ttlSeconds == null) return null;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > limits.maxTtlSeconds)
    throw badInput(`ttlSeconds must be an integer from 1 to ${limits.maxTtlSeconds}`, { field: 'ttlSeconds' });
  return new Date(now + ttlSeconds * 1000).toISOString();
}

export function expectedVersion(value: number | null | undefined): ExpectedVersion {
  if (value == null) return null;
  if (!Number.isInteger(value) || value < 0) throw badInput('ifVersion must be 0 (the entry must not exist) or a version', { field: 'ifVersion' });
  return value;
}

export function incrementBy(value: number | null | undefined): number {
  const by = value ?? 1;
  if (!Number.isSafeInteger(by)) throw badInput('by must be an integer', { field: 'by' });
  return by;
}

export function versionConflict(namespace: string, key: string, expected: number, current: number): Error {
  return domainError(
    'CONFLICT',
    expected === 0
      ? `"${key}" in ${namespace} already exists (version ${current})`
      : current === 0
        ? `"${key}" in ${namespace} does not exist; expected version ${expected}`
        : `"${key}" in ${namespace} is at version ${current}, not ${expected}`,
    { namespace, key, expectedVersion: expected, currentVersion: current },
  );
}

export function notACounter(namespace: string, key: string): Error {
  return badInput(`"${key}" in ${namespace} does not hold an integer: only integers can be incremented`, { field: 'key' });
}

export function counterOverflow(namespace: string, key: string): Error {
  return badInput(`incrementing "${key}" in ${namespace} would pass ±${MAX_COUNTER}`, { field: 'by' });
}

/** The new value of a counter, or an error: absent is 0. */
export function incremented(namespace: string, key: string, currentJson: string | null, by: number): string {
  const current = currentJson === null ? 0 : (JSON.parse(currentJson) as unknown);
  if (typeof current !== 'number' || !Number.isSafeInteger(current)) throw notACounter(namespace, key);
  const next = current + by;
  if (!Number.isSafeInteger(next)) throw counterOverflow(namespace, key);
  return String(next);
}
