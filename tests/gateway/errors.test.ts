import { GraphQLError } from 'graphql';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { formatGatewayError, subgraphUnavailable } from '../../gateway/errors.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { format: formatGatewayError(logger), lines };
}

describe('formatGatewayError', () => {
  it('masks an unexpected error: a correlation id for the client, the stack for the log', () => {
    const { format, lines } = capture();
    const bug = new Error('secret detail at /srv/app.ts:12');
    const error = new GraphQLError(bug.message, { originalError: bug });
    const formatted = format({ message: bug.message, extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['Error: secret', 'at x'] } }, error);
    expect(formatted.message).toMatch(/^Internal server error \(correlation id [0-9a-f-]{36}\)$/);
    expect(formatted.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', correlationId: expect.any(String) });
    expect(JSON.stringify(formatted)).not.toContain('secret');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ correlationId: formatted.extensions?.correlationId, err: { message: 'secret detail at /srv/app.ts:12' } });
  });

  it('passes coded errors of the gateway itself (validation...) without a stack trace', () => {
    const { format } = capture();
    const error = new GraphQLError('Cannot query field "nope" on type "Query".', { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
    const formatted = format({ message: error.message, extensions: { code: 'GRAPHQL_VALIDATION_FAILED', stacktrace: ['x'] } }, error);
    expect(formatted).toEqual({ message: error.message, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  });

  it('passes errors a subgraph sent, which the gateway wraps around plain JSON', () => {
    const { format, lines } = capture();
    const received = { message: 'Agent "x" not found', extensions: { code: 'NOT_FOUND', entity: 'Agent', id: 'x' } };
    const error = new GraphQLError(received.message, {
      originalError: received as unknown as Error,
      path: ['agent'],
      extensions: { ...received.extensions, serviceName: 'agents' },
    });
    const formatted = format({ message: received.message, path: ['agent'], extensions: { ...received.extensions, serviceName: 'agents' } }, error);
    expect(formatted).toEqual({
      message: 'Agent "x" not found',
      path: ['agent'],
      extensions: { code: 'NOT_FOUND', entity: 'Agent', id: 'x', serviceName: 'agents' },
    });
    expect(lines).toEqual([]);
  });

  it('passes SUBGRAPH_UNAVAILABLE as built', () => {
    const { format } = capture();
    const error = subgraphUnavailable('agents', 'connect ECONNREFUSED 127.0.0.1:4001');
    expect(format({ message: error.message, extensions: error.extensions }, error)).toEqual({
      message: 'Subgraph "agents" is unavailable: connect ECONNREFUSED 127.0.0.1:4001',
      extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'agents' },
    });
  });
});
