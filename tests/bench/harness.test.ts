// The benchmark harness's own logic (bench/): what it compares, how it summarises, how it reads
// its flags. The measurements themselves need the whole platform and run with `npm run bench`.
import { readFileSync } from 'node:fs';
import { parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ApolloGateway } from '@apollo/gateway';
import { parseOptions } from '../../bench/options.ts';
import { cpuMs, peakRssMb } from '../../bench/proc.ts';
import { markdownTable, median, summarise, withRatios } from '../../bench/report.ts';
import { AGENT_JOIN, AGENT_LIST, idsOf, restEquivalentQuery, seededRandom } from '../../bench/scenarios.ts';
import { stockSupergraph, withSubgraphUrls } from '../../bench/stock-supergraph.ts';
import { normalise } from '../../bench/verify.ts';
import type { Measurement } from '../../bench/measure.ts';
import { DEFAULT_SUPERGRAPH_PATH } from '../../gateway/config.ts';

const measurement = (requestsPerSecond: number, cpu: number): Measurement => ({
  requestsPerSecond,
  p50: 10,
  p99: 20,
  completed: 100,
  failures: { errors: 0, timeouts: 0, non2xx: 0, graphqlErrors: 1 },
  cpuMsPerRequest: { ours: cpu, stock: cpu * 2 },
});

describe('same-data check', () => {
  it('treats objects with the same content in another key order as equal, and different content as different', () => {
    expect(JSON.stringify(normalise({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: null } }))).toBe(
      JSON.stringify(normalise({ a: { c: null, d: [1, { e: 2, f: 1 }] }, b: 1 })),
    );
    expect(JSON.stringify(normalise({ a: [1, 2] }))).not.toBe(JSON.stringify(normalise({ a: [2, 1] })));
  });

  it('compares a REST list and its GraphQL twin by their entity ids, in order, once each', () => {
    const a = '11111111-1111-4111-8111-111111111111';
    const b = '22222222-2222-4222-8222-222222222222';
    const graphql = { data: { agents: { nodes: [{ id: a, skills: [{ id: 'own' }] }, { id: b }] } } };
    const rest = {
      items: [
        { id: a, links: { self: { id: a } } },
        { id: b, skills: [{ id: 'common' }] },
      ],
    };
    expect(idsOf(graphql)).toEqual([a, b]);
    expect(idsOf(rest)).toEqual(idsOf(graphql));
    expect(idsOf({ items: [{ id: b }, { id: a }] })).not.toEqual(idsOf(graphql));
  });
});

describe('summaries', () => {
  it('takes medians over the rounds, keeps the range and counts failures', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    const ours = summarise('ours', [measurement(300, 1), measurement(100, 3), measurement(200, 2)], 'ours');
    expect(ours.median).toMatchObject({ requestsPerSecond: 200, cpuMsPerRequest: 2 });
    expect(ours.range).toEqual([100, 300]);
    expect(ours.failures).toBe(3);
  });

  it('gives every target its ratio to stock from the same run', () => {
    const [stock, ours] = withRatios([summarise('stock', [measurement(100, 1)], 'stock'), summarise('ours', [measurement(250, 1)], 'ours')]);
    expect(stock?.ratioToStock).toBe(1);
    expect(ours?.ratioToStock).toBe(2.5);
    expect(withRatios([summarise('ours', [measurement(250, 1)], 'ours')])[0]?.ratioToStock).toBeNull();
  });

  it('keeps the lowest and highest ratio of a single round: the ratio under one machine state', () => {
    const [, ours] = withRatios([
      summarise('stock', [measurement(100, 1), measurement(200, 1), measurement(150, 1)], 'stock'),
      summarise('ours', [measurement(250, 1), measurement(380, 1), measurement(360, 1)], 'ours'),
    ]);
    // Medians 360 / 150 = 2.4; per round 2.5, 1.9, 2.4.
    expect(ours?.ratioToStock).toBe(2.4);
    expect(ours?.ratioRange).toEqual([1.9, 2.5]);
    expect(markdownTable([{ id: 'x', title: 'x', sameData: null, skipped: null, targets: ours ? [ours] : [] }])).toContain('| 2.40× (1.90–2.50) |');
  });
});

const supergraph = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8');

describe('scenarios', () => {
  it('sends operations that are valid against the served graph', async () => {
    const gateway = new ApolloGateway({ supergraphSdl: stockSupergraph(supergraph, {}), logger: { debug() {}, info() {}, warn() {}, error() {} } });
    const { schema } = await gateway.load();
    try {
      for (const query of [AGENT_LIST, AGENT_JOIN, restEquivalentQuery()]) expect(validate(schema, parse(query))).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });

  it('asks stock for exactly the operation behind GET /v1/agents, with only the fragments it uses', () => {
    const query = restEquivalentQuery();
    expect(query).toMatch(/^query ListAgents\(/);
    expect(query).toContain('fragment Agent on Agent');
    expect(parse(query).definitions.filter((d) => d.kind === 'FragmentDefinition')).toHaveLength(1);
  });

  it('draws the same random sequence for the same seed, a different one for another', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const first = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(seededRandom(43)()).not.toBe(first[0]);
  });
});

describe('the supergraph stock @apollo/gateway gets', () => {
  it('points every subgraph to the URL given and leaves the others as composed', () => {
    const sdl = withSubgraphUrls(supergraph, { agents: 'http://127.0.0.1:9/graphql' });
    expect(sdl).toContain('@join__graph(name: "agents", url: "http://127.0.0.1:9/graphql")');
    expect(sdl).toContain('@join__graph(name: "orchestration", url: "http://127.0.0.1:4002/graphql")');
  });

  it('is one stock @apollo/gateway loads, while it refuses the composed file as it is', async () => {
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    const refused = new ApolloGateway({ supergraphSdl: supergraph, logger: quiet });
    await expect(refused.load()).rejects.toThrow(/SECURITY/);
    const accepted = new ApolloGateway({ supergraphSdl: stockSupergraph(supergraph, {}), logger: quiet });
    await expect(accepted.load()).resolves.toBeDefined();
    await accepted.stop();
  });
});

describe('flags', () => {
  it('has full and quick defaults', () => {
    const full = parseOptions([], '/out');
    expect(full).toMatchObject({
      durationSeconds: 10,
      warmupSeconds: 3,
      rounds: 3,
      connections: 50,
      agents: 1000,
      tasks: 5000,
      token: true,
      targets: ['subgraph', 'stock', 'ours'],
    });
    expect(parseOptions(['--quick'], '/out')).toMatchObject({ durationSeconds: 2, warmupSeconds: 1, rounds: 3 });
  });

  it('adds a target per variant, with its own settings on top of --ours-env', () => {
    const options = parseOptions(['--ours-env', 'LOG_LEVEL=warn', '--variant', 'no-dedup:SUBGRAPH_DEDUP=false,FOO=1'], '/out');
    if (options === 'help') throw new Error('unexpected help');
    expect(options.targets).toEqual(['subgraph', 'stock', 'ours', 'ours:no-dedup']);
    expect(options.variants).toEqual([{ name: 'no-dedup', env: { LOG_LEVEL: 'warn', SUBGRAPH_DEDUP: 'false', FOO: '1' } }]);
    const gc = parseOptions(['--variant', 'gc:--max-semi-space-size=32,--heap-growing-percent=50,X=1'], '/out');
    if (gc === 'help') throw new Error('unexpected help');
    expect(gc.variants).toEqual([{ name: 'gc', env: { X: '1' }, nodeArgs: ['--max-semi-space-size=32', '--heap-growing-percent=50'] }]);
  });

  it('adds a target per --compare checkout, run from that directory', () => {
    const options = parseOptions(['--ours-env', 'LOG_LEVEL=warn', '--compare', 'head=/tmp/base'], '/out');
    if (options === 'help') throw new Error('unexpected help');
    expect(options.targets).toEqual(['subgraph', 'stock', 'ours', 'ours:head']);
    expect(options.variants).toEqual([{ name: 'head', env: { LOG_LEVEL: 'warn' }, root: '/tmp/base' }]);
    expect(() => parseOptions(['--compare', 'head'], '/out')).toThrow(/--compare/);
  });

  it('refuses bad values, naming the flag', () => {
    expect(() => parseOptions(['--rounds', '0'], '/out')).toThrow(/--rounds/);
    expect(() => parseOptions(['--targets', 'router'], '/out')).toThrow(/--targets: unknown router/);
    expect(() => parseOptions(['--variant', 'Bad Name:X=1'], '/out')).toThrow(/--variant/);
    expect(() => parseOptions(['--ours-env', 'NOVALUE'], '/out')).toThrow(/--ours-env/);
  });
});

describe('/proc readings', () => {
  it('reads this process’s CPU time and peak memory, and nothing for a process that does not exist', () => {
    const before = cpuMs(process.pid);
    let x = 0;
    const until = Date.now() + 60;
    while (Date.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    const after = cpuMs(process.pid);
    expect(before).not.toBeNull();
    expect(after as number).toBeGreaterThanOrEqual(before as number);
    expect(peakRssMb(process.pid)).toBeGreaterThan(10);
    expect(cpuMs(2 ** 22 + 12345)).toBeNull();
  });
});
