import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { badInput } from './errors.ts';
import { JSONResolver, SafeIntResolver } from 'graphql-scalars';

/**
 * DateTime: ISO-8601 UTC strings on the wire and in the stores (which keep them as text, so they
 * sort and compare the same on SQLite and PostgreSQL). Inputs are normalised to toISOString().
 */
export const DateTimeScalar = new GraphQLScalarType<string, string>({
  name: 'DateTime',
  description: 'An instant in time, ISO-8601 in UTC.',
  serialize(value) {
    if (value instanceof Date) return value.toISOString();
    if (typeof value === 'string') return value;
    throw new TypeError(`DateTime cannot represent ${String(value)}`);
  },
  parseValue(value) {
    return parseInstant(value);
  },
  parseLiteral(ast: ValueNode) {
    if (ast.kind !== Kind.STRING) throw badInput('DateTime must be a string');
    return parseInstant(ast.value);
  },
});

function parseInstant(value: unknown): string {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(Date.parse(value))) {
    // A coded error: graphql-js reports a GraphQLError from a scalar as it is, while any other error
    // became an uncoded validation error, masked as INTERNAL_SERVER_ERROR.
    throw badInput(`DateTime must be an ISO-8601 date-time string, got ${JSON.stringify(value)}`);
  }
  return new Date(value).toISOString();
}

export const JSONScalar = JSONResolver;

export const scalarResolvers = { DateTime: DateTimeScalar, JSON: JSONScalar };

/** For subgraphs whose events carry sequences (SafeInt: integers exact in JSON numbers). */
export const eventScalarResolvers = { SafeInt: SafeIntResolver };

/** What every event type exposes: its id and its place in the tenant's event log. */
export function eventIdentity(event: { id: string; sequence: number }): { eventId: string; sequence: number } {
  return { eventId: event.id, sequence: event.sequence };
}

/** An afterSequence argument: absent, or a sequence (0 resumes from the very first event). */
export function afterSequenceArg(value: number | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isSafeInteger(value) || value < 0)
    throw badInput('afterSequence must be a sequence received from this subscription (an integer >= 0)', { argument: 'afterSequence' });
  return value;
}
