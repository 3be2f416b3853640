// Rate limits per caller, in memory and shared through Redis (when REDIS_URL is set).
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../gateway/auth/principal.ts';
import { loadLimitsConfig, type RateLimitConfig } from '../../gateway/limits/config.ts';
import { createRateLimiter, principalKey, rateLimitedError, rateLimitHeaders, type RateLimiter } from '../../gateway/limits/rate-limit.ts';
import { REDIS_URL, silentLogger } from '../support/databases.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function config(overrides: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return {
    enabled: true,
    http: { points: 3, windowSeconds: 1 },
    subscription: { points: 2, windowSeconds: 30 },
    redisUrl: undefined,
    // A fresh prefix per limiter group: tests never share budgets through Redis.
    prefix: `test-${randomBytes(4).toString('hex')}`,
    ...overrides,
  };
}

const open: RateLimiter[] = [];
function limiter(c: RateLimitConfig): RateLimiter {
  const l = createRateLimiter(c, silentLogger);
  open.push(l);
  return l;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

async function consumeN(l: RateLimiter, n: number, key = 'sub:t:alice', budget: 'http' | 'subscription' = 'http') {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await l.consume(budget, key));
  return out;
}

describe('rate limits in memory', () => {
  it('allows the budget, then refuses with a retry delay, then allows again after the window', async () => {
    const l = limiter(config());
    expect(l.store).toBe('memory');
    const decisions = await consumeN(l, 4);
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([2, 1, 0, 0]);
    const refused = decisions[3]!;
    expect(refused.retryAfterSeconds).toBe(1);
    expect(rateLimitHeaders(refused)).toEqual({ 'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'ratelimit-reset': '1', 'retry-after': '1' });
    expect(rateLimitHeaders(decisions[0]!)).not.toHaveProperty('retry-after');
    expect(rateLimitedError(refused, 'http').extensions).toEqual({ code: 'RATE_LIMITED', retryAfterSeconds: 1 });
    await sleep(1_100);
    expect((await l.consume('http', 'sub:t:alice')).allowed).toBe(true);
  });

  it('keeps callers and budgets apart', async () => {
    const l = limiter(config());
    await consumeN(l, 3, 'sub:t:alice');
    expect((await l.consume('http', 'sub:t:alice')).allowed).toBe(false);
    expect((await l.consume('http', 'key:k1')).allowed).toBe(true);
    // Subscription starts have their own budget (2 per 30 s here).
    const subs = await consumeN(l, 3, 'sub:t:alice', 'subscription');
    expect(subs.map((d) => d.allowed)).toEqual([true, true, false]);
    expect(subs[2]!.retryAfterSeconds).toBeGreaterThan(20);
  });

  it('counts per API key, per user within its tenant, and per address for anonymous callers', () => {
    expect(principalKey({ kind: 'apiKey', subject: 'apikey:k1', tenantId: 't', scopes: [], expiresAt: null, apiKeyId: 'k1' }, '10.0.0.1')).toBe('key:k1');
    expect(principalKey({ kind: 'user', subject: 'alice', tenantId: 't1', scopes: [], expiresAt: null }, '10.0.0.1')).toBe('sub:t1:alice');
    expect(principalKey({ kind: 'user', subject: 'alice', tenantId: 't2', scopes: [], expiresAt: null }, '10.0.0.1')).toBe('sub:t2:alice');
    expect(principalKey(ANONYMOUS, '10.0.0.1')).toBe('ip:10.0.0.1');
  });

  it('allows everything when disabled', async () => {
    const l = limiter(config({ enabled: false }));
    expect(l.store).toBe('off');
    expect((await consumeN(l, 10)).every((d) => d.allowed)).toBe(true);
  });

  it('falls back to a per-replica memory budget when Redis is unreachable, rather than to no limit', async () => {
    const l = limiter(config({ redisUrl: 'redis://127.0.0.1:1' }));
    expect(l.store).toBe('redis');
    await expect(l.ready(200)).rejects.toThrow(/not ready/);
    const decisions = await consumeN(l, 4);
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
  });

  it('reads its settings from the environment', () => {
    expect(loadLimitsConfig({}).rateLimit).toEqual({
      enabled: true,
      http: { points: 600, windowSeconds: 60 },
      subscription: { points: 60, windowSeconds: 60 },
      redisUrl: undefined,
      prefix: 'agentplatform:ratelimit',
    });
    const c = loadLimitsConfig({ RATE_LIMIT_HTTP_REQUESTS: '5', RATE_LIMIT_SUBSCRIPTION_WINDOW_SECONDS: '10', REDIS_URL: 'redis://h:6379' }).rateLimit;
    expect(c).toMatchObject({ http: { points: 5, windowSeconds: 60 }, subscription: { points: 60, windowSeconds: 10 }, redisUrl: 'redis://h:6379' });
    expect(() => loadLimitsConfig({ RATE_LIMIT_HTTP_REQUESTS: '0', RATE_LIMIT_ENABLED: 'maybe' })).toThrow(/RATE_LIMIT_ENABLED[\s\S]*RATE_LIMIT_HTTP_REQUESTS/);
  });
});

describe.skipIf(!REDIS_URL)(REDIS_URL ? 'rate limits shared through Redis' : 'rate limits shared through Redis: skipped, REDIS_URL is not set', () => {
  it('shares one budget between replicas, and resets it after the window', async () => {
    const shared = config({ redisUrl: REDIS_URL });
    const a = limiter(shared);
    const b = limiter(shared);
    expect(a.store).toBe('redis');
    await Promise.all([a.ready(), b.ready()]);
    expect((await consumeN(a, 2)).every((d) => d.allowed)).toBe(true);
    const third = await b.consume('http', 'sub:t:alice');
    expect(third).toMatchObject({ allowed: true, remaining: 0 });
    const refused = await a.consume('http', 'sub:t:alice');
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(1);
    expect((await b.consume('http', 'sub:t:alice')).allowed).toBe(false);
    await sleep(1_100);
    expect((await b.consume('http', 'sub:t:alice')).allowed).toBe(true);
  });

  it('keeps budgets of different prefixes (deployments) apart', async () => {
    const a = limiter(config({ redisUrl: REDIS_URL }));
    const b = limiter(config({ redisUrl: REDIS_URL }));
    await Promise.all([a.ready(), b.ready()]);
    await consumeN(a, 3);
    expect((await a.consume('http', 'sub:t:alice')).allowed).toBe(false);
    expect((await b.consume('http', 'sub:t:alice')).allowed).toBe(true);
  });
});
if (!REDIS_URL) console.warn('[tests] Redis rate limit tests are skipped: REDIS_URL is not set (CI sets it).');
