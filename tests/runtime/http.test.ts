// The shared HTTP transport (runtime/http.ts): request targets split without a WHATWG URL where
// that gives the same answer, and GraphQL answers sent with their length rather than chunked.
import { request } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitTarget, startHttpServer, type RunningHttpServer } from '../../runtime/http.ts';
import { createLogger } from '../../runtime/logger.ts';

describe('splitTarget', () => {
  it('gives the path and query new URL() gives, for plain and unusual targets alike', () => {
    const targets = [
      '/',
      '/graphql',
      '/graphql?',
      '/graphql?query=%7B%20a%20%7D&operationName=A',
      '/graphql?query={a{b}}&x=[1]|^`\\',
      '/v1/agents?first=10&after=abc',
      '/openapi.json',
      '/a/./b',
      '/a/../graphql',
      '/a/..',
      '/a/.',
      '/%2e%2e/graphql',
      '//evil/graphql',
      '/a\\b',
      "/it's?q='x'",
      '/sp ace?q=a b',
      '/q?x="<y>"',
      '/frag#ment?x',
      '/é?q=ü',
      '/a/.well-known/x',
      '/a..b/c',
    ];
    for (const target of targets) {
      const url = new URL(target, 'http://localhost');
      expect({ target, ...splitTarget(target) }).toEqual({ target, pathname: url.pathname, search: url.search });
    }
  });
});

describe('GraphQL over the transport', () => {
  let apollo: ApolloServer;
  let http: RunningHttpServer;

  beforeAll(async () => {
    apollo = new ApolloServer({
      typeDefs: 'type Query { hello(name: String): String }',
      resolvers: { Query: { hello: (_: unknown, a: { name?: string }) => `hi ${a.name ?? 'you'}` } },
    });
    await apollo.start();
    http = await startHttpServer(
      { logger: createLogger('test', 'silent'), maxBodyBytes: 10_000, apollo, context: async () => ({}), readiness: async () => {} },
      { host: '127.0.0.1', port: 0 },
    );
  });
  afterAll(async () => {
    await http?.close(1_000);
    await apollo?.stop();
  });

  function send(
    method: 'GET' | 'POST',
    path: string,
    body?: string,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: http.port, method, path, headers: body ? { 'content-type': 'application/json' } : { 'apollo-require-preflight': 'true' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it('answers with a Content-Length, not chunked, over POST and GET', async () => {
    const post = await send('POST', '/graphql', JSON.stringify({ query: '{ hello(name: "ü") }' }));
    expect(post.status).toBe(200);
    expect(JSON.parse(post.body)).toEqual({ data: { hello: 'hi ü' } });
    expect(post.headers['transfer-encoding']).toBeUndefined();
    expect(Number(post.headers['content-length'])).toBe(Buffer.byteLength(post.body));

    const get = await send('GET', `/graphql?query=${encodeURIComponent('query Q { hello }')}&operationName=Q`);
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body)).toEqual({ data: { hello: 'hi you' } });
    expect(Number(get.headers['content-length'])).toBe(Buffer.byteLength(get.body));
    // Dot segments still resolve as a URL would.
    expect((await send('POST', '/x/../graphql', JSON.stringify({ query: '{ hello }' }))).status).toBe(200);
    expect((await send('GET', '/nowhere')).status).toBe(404);
  });
});
