// Small helpers the store tests share.
import { GraphQLError } from 'graphql';
import { expect } from 'vitest';

/** A clock that moves only when told to, so timestamps are exact and no test sleeps. */
export function manualClock(start = Date.parse('2026-03-01T12:00:00.000Z')) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** The GraphQLError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function rejection(p: Promise<unknown>): Promise<GraphQLError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphQLError);
  return err as GraphQLError;
}
