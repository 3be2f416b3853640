import { describe, expect, it } from 'vitest';
import { credentialsFromConnectionParams, readCredentials } from '../../gateway/auth/credentials.ts';
import { AuthError } from '../../gateway/auth/principal.ts';

const headers = (h: Record<string, string>) => (name: string) => h[name];

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).reason).toBe('malformed');
    return (err as AuthError).message;
  }
  throw new Error('expected a refusal');
}

describe('reading credentials', () => {
  it('reads a bearer token, an ApiKey authorization and X-API-Key; none is anonymous', () => {
    expect(readCredentials(headers({}))).toEqual({ kind: 'none' });
    expect(readCredentials(headers({ authorization: 'Bearer abc.def.ghi' }))).toEqual({ kind: 'bearer', token: 'abc.def.ghi' });
    expect(readCredentials(headers({ authorization: 'bearer  abc.def.ghi ' }))).toEqual({ kind: 'bearer', token: 'abc.def.ghi' });
    expect(readCredentials(headers({ authorization: 'ApiKey ap_1_x' }))).toEqual({ kind: 'apiKey', key: 'ap_1_x' });
    expect(readCredentials(headers({ 'x-api-key': 'ap_1_x' }))).toEqual({ kind: 'apiKey', key: 'ap_1_x' });
    expect(readCredentials(headers({ 'x-api-key': 'ap_1_x', authorization: 'ApiKey ap_1_x' }))).toEqual({ kind: 'apiKey', key: 'ap_1_x' });
  });

  it('refuses other schemes, empty values, two different credentials and oversized ones', () => {
    expect(refused(() => readCredentials(headers({ authorization: 'Basic dXNlcjpwYXNz' })))).toContain('unsupported authorization scheme "Basic"');
    refused(() => readCredentials(headers({ authorization: 'Bearer' })));
    refused(() => readCredentials(headers({ authorization: 'Bearer a b' })));
    expect(refused(() => readCredentials(headers({ authorization: 'Bearer t', 'x-api-key': 'k' })))).toContain('not both');
    refused(() => readCredentials(headers({ authorization: 'ApiKey k1', 'x-api-key': 'k2' })));
    refused(() => readCredentials(headers({ authorization: `Bearer ${'x'.repeat(9000)}` })));
    refused(() => readCredentials(headers({ 'x-api-key': 'a key' })));
  });

  it('reads graphql-ws connection_init payloads under header names or token / apiKey', () => {
    expect(credentialsFromConnectionParams(undefined)).toEqual({ kind: 'none' });
    expect(credentialsFromConnectionParams({ Authorization: 'Bearer t1' })).toEqual({ kind: 'bearer', token: 't1' });
    expect(credentialsFromConnectionParams({ token: 't2' })).toEqual({ kind: 'bearer', token: 't2' });
    expect(credentialsFromConnectionParams({ apiKey: 'k1' })).toEqual({ kind: 'apiKey', key: 'k1' });
    expect(credentialsFromConnectionParams({ 'X-API-Key': 'k2', other: 3 })).toEqual({ kind: 'apiKey', key: 'k2' });
    refused(() => credentialsFromConnectionParams({ token: 't', apiKey: 'k' }));
  });
});
