import { randomUUID } from 'node:crypto';
import { badInput } from './errors.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function newId(): string {
  return randomUUID();
}

/** Ids are UUIDs; anything else is a BAD_USER_INPUT naming the argument, before any query runs. */
export function parseId(value: string, argument: string): string {
  if (!UUID.test(value)) throw badInput(`${argument} must be a UUID, got "${value.slice(0, 64)}"`, { argument });
  return value.toLowerCase();
}
