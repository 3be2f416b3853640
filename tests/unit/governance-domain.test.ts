import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  displayPrefix,
  generateKey,
  hashKey,
  keyMatches,
  LAST_USED_RESOLUTION_MS,
  lastUsedThreshold,
  LIMITS,
  normaliseCreateInput,
  prefixOf,
  subjectOfKey,
} from '../../subgraphs/governance/domain.ts';

function badInputField(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    expect((err as GraphQLError).extensions.code).toBe('BAD_USER_INPUT');
    return (err as GraphQLError).extensions.field;
  }
  throw new Error('expected BAD_USER_INPUT');
}

describe('API key input', () => {
  it('trims the name and deduplicates and sorts known scopes', () => {
    expect(normaliseCreateInput({ name: '  CI pipeline ', scopes: ['tasks:write', 'agents:read', 'tasks:write'] })).toEqual({
      name: 'CI pipeline',
      scopes: ['agents:read', 'tasks:write'],
    });
  });

  it('refuses an empty or long name, no scopes, too many, and unknown scopes, naming the field', () => {
    expect(badInputField(() => normaliseCreateInput({ name: '  ', scopes: ['admin'] }))).toBe('input.name');
    expect(badInputField(() => normaliseCreateInput({ name: 'x'.repeat(LIMITS.name + 1), scopes: ['admin'] }))).toBe('input.name');
    expect(badInputField(() => normaliseCreateInput({ name: 'k', scopes: [] }))).toBe('input.scopes');
    expect(badInputField(() => normaliseCreateInput({ name: 'k', scopes: Array.from({ length: LIMITS.scopes + 1 }, () => 'admin') }))).toBe('input.scopes');
    expect(badInputField(() => normaliseCreateInput({ name: 'k', scopes: ['agents:read', 'agents:delete'] }))).toBe('input.scopes[1]');
    expect(badInputField(() => normaliseCreateInput({ name: 'k', scopes: ['Admin'] }))).toBe('input.scopes[0]');
  });
});

describe('API key material', () => {
  it('makes keys of the documented form whose prefix is shown and whose hash verifies', () => {
    const { key, prefix, hash } = generateKey();
    expect(key).toMatch(/^ap_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(prefixOf(key)).toBe(prefix);
    expect(displayPrefix(prefix)).toBe(key.slice(0, 19));
    expect(hash).toBe(hashKey(key));
    expect(hash).not.toContain(key.slice(20));
    expect(keyMatches(key, hash)).toBe(true);
  });

  it('rejects any other key against the hash, and malformed keys before any lookup', () => {
    const { key, hash } = generateKey();
    const tampered = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    expect(keyMatches(tampered, hash)).toBe(false);
    expect(keyMatches(generateKey().key, hash)).toBe(false);
    expect(keyMatches(key, 'not-hex')).toBe(false);
    for (const bad of ['', 'ap_', key.toUpperCase(), `${key}x`, key.replace('ap_', 'ak_'), ` ${key}`]) expect(prefixOf(bad)).toBeNull();
  });

  it('never repeats a key', () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateKey().key));
    expect(keys.size).toBe(200);
  });
});

describe('API key use', () => {
  it('records use again only when the last record is older than the resolution', () => {
    const now = new Date('2026-03-01T12:00:00.000Z');
    expect(lastUsedThreshold(now)).toBe(new Date(now.getTime() - LAST_USED_RESOLUTION_MS).toISOString());
    expect(LAST_USED_RESOLUTION_MS).toBe(60_000);
  });

  it('acts as apikey:<id>', () => {
    expect(subjectOfKey('5f0c')).toBe('apikey:5f0c');
  });
});
