// gateway/upstream on its own: which replica an attempt goes to, ejection and probing back,
// retries (queries only), the bulkhead and the breaker, with attempts that are plain functions.
import { BrokenCircuitError, BulkheadRejectedError } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import { describeState, type Replica, Upstream, type UpstreamOptions, Upstreams } from '../../gateway/upstream/index.ts';

const URLS = ['http://127.0.0.1:1/graphql', 'http://127.0.0.1:2/graphql'];

function upstream(overrides: Partial<UpstreamOptions> = {}): Upstream {
  return new Upstream({
    name: 'agents',
    urls: URLS,
    timeoutMs: 5_000,
    retries: 2,
    retryDelayMs: 1,
    breakerFailures: 0,
    breakerHalfOpenMs: 50,
    maxConcurrency: 100,
    maxQueued: 0,
    balancing: 'round-robin',
    ejectAfter: 2,
    probeMs: 10,
    probe: async () => true,
    ...overrides,
  });
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

describe('Upstream', () => {
  it('round robin alternates between replicas', async () => {
    const u = upstream();
    const used: string[] = [];
    for (let i = 0; i < 4; i++) await u.execute(true, async (r) => used.push(r.url));
    expect(used).toEqual([URLS[0], URLS[1], URLS[0], URLS[1]]);
    u.close();
  });

  it('least pending sends to the replica with fewer requests in flight', async () => {
    const u = upstream({ balancing: 'least-pending' });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = u.execute(true, async (r) => {
      await held;
      return r.url;
    });
    const seconds: string[] = [];
    for (let i = 0; i < 3; i++) seconds.push(await u.execute(true, async (r) => r.url));
    release();
    const busy = await first;
    expect(seconds.every((url) => url !== busy)).toBe(true);
    u.close();
  });

  it('retries a failed query on the other replica, and never a mutation', async () => {
    const u = upstream();
    const tried: string[] = [];
    const result = await u.execute(true, async (r) => {
      tried.push(r.url);
      if (tried.length === 1) throw refused();
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(new Set(tried).size).toBe(2);

    let mutationAttempts = 0;
    await expect(
      u.execute(false, async () => {
        mutationAttempts++;
        throw refused();
      }),
    ).rejects.toThrow('ECONNREFUSED');
    expect(mutationAttempts).toBe(1);
    u.close();
  });

  it('does not retry what the subgraph answered (outage: false)', async () => {
    const u = upstream();
    let attempts = 0;
    await expect(
      u.execute(true, async () => {
        attempts++;
        throw Object.assign(new Error('too large'), { outage: false });
      }),
    ).rejects.toThrow('too large');
    expect(attempts).toBe(1);
    u.close();
  });

  it('ejects a replica after consecutive failures, sends it nothing, and takes it back once a probe succeeds', async () => {
    let alive = false;
    const probed: string[] = [];
    const u = upstream({
      retries: 0,
      probe: async (r: Replica) => {
        probed.push(r.url);
        return alive;
      },
    });
    const down = URLS[1];
    const attempt = async (r: Replica) => {
      if (r.url === down) throw refused();
      return r.url;
    };
    for (let i = 0; i < 4; i++) await u.execute(true, attempt).catch(() => {});
    expect(u.state().replicas).toEqual([
      { url: URLS[0], healthy: true, pending: 0 },
      { url: down, healthy: false, pending: 0 },
    ]);
    expect(describeState(u.state())).toBe('degraded: 1/2 replicas healthy');
    const used = new Set<string>();
    for (let i = 0; i < 4; i++) used.add(await u.execute(true, async (r) => r.url));
    expect([...used]).toEqual([URLS[0]]);

    await expect.poll(() => probed.length).toBeGreaterThan(0);
    alive = true;
    await expect.poll(() => u.state().replicas[1]?.healthy).toBe(true);
    used.clear();
    for (let i = 0; i < 4; i++) used.add(await u.execute(true, async (r) => r.url));
    expect(used.size).toBe(2);
    u.close();
  });

  it('a full bulkhead refuses at once', async () => {
    const u = upstream({ maxConcurrency: 1, maxQueued: 0 });
    let release: () => void = () => {};
    const held = u.execute(
      true,
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    await expect(u.execute(true, async () => 'never')).rejects.toBeInstanceOf(BulkheadRejectedError);
    expect(u.state().freeSlots).toBe(0);
    release();
    await held;
    expect(u.state().freeSlots).toBe(1);
    u.close();
  });

  it('the breaker opens after consecutive failed fetches, refuses without calling, and closes after a successful half-open fetch', async () => {
    const u = upstream({ urls: [URLS[0] as string], retries: 0, breakerFailures: 2, breakerHalfOpenMs: 50 });
    for (let i = 0; i < 2; i++)
      await expect(
        u.execute(true, async () => {
          throw refused();
        }),
      ).rejects.toThrow('ECONNREFUSED');
    expect(u.state().breaker).toBe('open');
    expect(describeState(u.state())).toBe('down: circuit breaker open, 1/1 replicas healthy');
    let called = false;
    await expect(
      u.execute(true, async () => {
        called = true;
      }),
    ).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(called).toBe(false);
    // Half-open after breakerHalfOpenMs: the next fetch goes through and closes it.
    await expect
      .poll(async () => u.execute(true, async () => 'ok').catch((err: unknown) => (err instanceof BrokenCircuitError ? 'open' : 'other')), {
        timeout: 5_000,
        interval: 20,
      })
      .toBe('ok');
    expect(u.state().breaker).toBe('closed');
    u.close();
  });

  it('ends a fetch at its deadline, whatever the attempt does', async () => {
    const u = upstream({ timeoutMs: 50, retries: 0 });
    let aborted = false;
    await expect(
      u.execute(
        true,
        (_r, deadline) =>
          new Promise(() => {
            deadline.watch(() => {
              aborted = true;
            });
          }),
      ),
    ).rejects.toThrow('no response within 50 ms');
    expect(aborted).toBe(true);
    u.close();
  });
});

describe('Upstreams', () => {
  it('lists each defined subgraph with its breaker and replicas, a redefinition replacing the old one', () => {
    const all = new Upstreams();
    const options = {
      timeoutMs: 1_000,
      retries: 0,
      retryDelayMs: 1,
      breakerFailures: 5,
      breakerHalfOpenMs: 1_000,
      maxConcurrency: 10,
      maxQueued: 0,
      balancing: 'least-pending' as const,
      ejectAfter: 3,
      probeMs: 1_000,
      probe: async () => true,
    };
    all.define({ ...options, name: 'agents', urls: ['http://a/graphql'] });
    all.define({ ...options, name: 'agents', urls: URLS });
    all.define({ ...options, name: 'governance', urls: ['http://g/graphql'] });
    expect(all.states()).toEqual({
      agents: {
        breaker: 'closed',
        freeSlots: 10,
        replicas: URLS.map((url) => ({ url, healthy: true, pending: 0 })),
      },
      governance: { breaker: 'closed', freeSlots: 10, replicas: [{ url: 'http://g/graphql', healthy: true, pending: 0 }] },
    });
    expect(all.get('agents')?.preferredUrl()).toBe(URLS[0]);
    all.close();
  });
});
