import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../runtime/config.ts';
import { DEFAULT_FORWARD_HEADERS, DEFAULT_SUPERGRAPH_PATH, loadGatewayConfig, subgraphTimeoutVariable, subgraphUrlVariable } from '../../gateway/config.ts';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('gateway configuration', () => {
  it('has working defaults', () => {
    const config = loadGatewayConfig({});
    expect(config.GATEWAY_PORT).toBe(4000);
    expect(config.SUPERGRAPH_PATH).toBe(DEFAULT_SUPERGRAPH_PATH);
    expect(DEFAULT_SUPERGRAPH_PATH).toMatch(/schema\/supergraph\.graphql$/);
    expect(config.SUBGRAPH_TIMEOUT_MS).toBe(10_000);
    expect(config.FORWARD_HEADERS).toEqual(['x-request-id', 'traceparent', 'tracestate', 'accept-language']);
    expect(DEFAULT_FORWARD_HEADERS).toEqual(config.FORWARD_HEADERS);
    expect(config.SUPERGRAPH_WATCH).toBe(true);
    expect(config.subgraphUrls).toEqual({});
  });

  it('reads SUBGRAPH_<NAME>_URL overrides and names them the way subgraphs are looked up', () => {
    const config = loadGatewayConfig({ SUBGRAPH_AGENTS_URL: 'http://10.0.0.5:9001/graphql', SUBGRAPH_TIMEOUT_MS: '2500' });
    expect(config.subgraphUrls).toEqual({ SUBGRAPH_AGENTS_URL: 'http://10.0.0.5:9001/graphql' });
    expect(config.subgraphUrls[subgraphUrlVariable('agents')]).toBe('http://10.0.0.5:9001/graphql');
    expect(subgraphUrlVariable('billing-v2')).toBe('SUBGRAPH_BILLING_V2_URL');
    expect(config.SUBGRAPH_TIMEOUT_MS).toBe(2500);
  });

  it('reads several replica URLs in one SUBGRAPH_<NAME>_URL and per-subgraph SUBGRAPH_<NAME>_TIMEOUT_MS', () => {
    const config = loadGatewayConfig({
      SUBGRAPH_AGENTS_URL: 'http://10.0.0.5:9001/graphql, http://10.0.0.6:9001/graphql,,http://10.0.0.5:9001/graphql',
      SUBGRAPH_AGENTS_TIMEOUT_MS: '1500',
    });
    expect(config.subgraphReplicas).toEqual({ SUBGRAPH_AGENTS_URL: ['http://10.0.0.5:9001/graphql', 'http://10.0.0.6:9001/graphql'] });
    expect(config.subgraphUrls).toEqual({ SUBGRAPH_AGENTS_URL: 'http://10.0.0.5:9001/graphql' });
    expect(config.subgraphTimeouts).toEqual({ SUBGRAPH_AGENTS_TIMEOUT_MS: 1500 });
    expect(subgraphTimeoutVariable('billing-v2')).toBe('SUBGRAPH_BILLING_V2_TIMEOUT_MS');
    expect(config.SUBGRAPH_TIMEOUT_MS).toBe(10_000);
    expect(config.SUBGRAPH_RETRIES).toBe(2);
    expect(config.SUBGRAPH_BALANCING).toBe('least-pending');
  });

  it('reports a bad replica URL, a bad per-subgraph timeout and a bad balancing mode', () => {
    const problems = problemsOf(() =>
      loadGatewayConfig({
        SUBGRAPH_AGENTS_URL: 'http://10.0.0.5:9001/graphql,ftp://10.0.0.6/graphql',
        SUBGRAPH_AGENTS_TIMEOUT_MS: '0',
        SUBGRAPH_BALANCING: 'random',
      }),
    );
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_AGENTS_URL: expected a http or https URL/);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_AGENTS_TIMEOUT_MS: expected an integer >= 1/);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_BALANCING: expected one of least-pending, round-robin/);
  });

  it('normalises the forwarded header list', () => {
    const config = loadGatewayConfig({ FORWARD_HEADERS: ' Accept-Language, X-Tenant ,,x-tenant' });
    expect(config.FORWARD_HEADERS).toEqual(['accept-language', 'x-tenant']);
  });

  it('reports every bad value at once, naming the variable', () => {
    const problems = problemsOf(() =>
      loadGatewayConfig({
        GATEWAY_PORT: 'eighty',
        SUBGRAPH_TIMEOUT_MS: '0',
        SUBGRAPH_AGENTS_URL: 'ftp://agents',
        SUBGRAPH_ORCHESTRATION_URL: 'not a url',
        FORWARD_HEADERS: 'accept-language, bad header',
      }),
    );
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/GATEWAY_PORT: expected a port number/);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_TIMEOUT_MS: expected an integer >= 1/);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_AGENTS_URL: expected a http or https URL/);
    expect(problems.join('\n')).toMatch(/SUBGRAPH_ORCHESTRATION_URL: expected a URL/);
    expect(problems.join('\n')).toMatch(/FORWARD_HEADERS: expected comma-separated header names, got "bad header"/);
  });

  it('refuses to forward headers that describe the client connection or body', () => {
    const problems = problemsOf(() => loadGatewayConfig({ FORWARD_HEADERS: 'accept-language,Host,content-length,proxy-authorization' }));
    expect(problems).toEqual([expect.stringMatching(/^FORWARD_HEADERS: host, content-length, proxy-authorization .*cannot be forwarded/)]);
  });

  it('refuses to forward credentials: subgraphs trust only the identity the gateway signs', () => {
    for (const header of ['Authorization', 'x-api-key', 'X-Gateway-Identity', 'cookie']) {
      const problems = problemsOf(() => loadGatewayConfig({ FORWARD_HEADERS: `accept-language,${header}` }));
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^FORWARD_HEADERS: ${header.toLowerCase()} carry credentials`))]);
    }
  });
});
