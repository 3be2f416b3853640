// Rate limits per caller: an API key, a user (tenant + subject), or the client address for
// anonymous callers. Two budgets: HTTP requests (GraphQL and REST alike) and subscription starts.
// In memory by default; with REDIS_URL the budget is shared by every gateway replica, and if
// Redis fails each replica falls back to its own in-memory budget rather than to no limit at all.
import { GraphQLError } from 'graphql';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from '../../runtime/logger.ts';
import type { Principal } from '../auth/principal.ts';
import type { RateLimitConfig } from './config.ts';

export type Budget = 'http' | 'subscription';

export interface RateLimitDecision {
  allowed: boolean;
  /** When refused: seconds until the next attempt can succeed (at least 1). 0 when allowed. */
  retryAfterSeconds: number;
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export interface RateLimiter {
  readonly store: 'memory' | 'redis' | 'off';
  /** Resolves once the shared store is connected (at once without one); until then each replica counts alone. */
  ready(timeoutMs?: number): Promise<void>;
  consume(budget: Budget, key: string): Promise<RateLimitDecision>;
  close(): Promise<void>;
}

/** Who a budget belongs to: the API key, the user in its tenant, or the client address. */
export function principalKey(principal: Principal, clientAddress: string): string {
  if (principal.kind === 'apiKey' && principal.apiKeyId) return `key:${principal.apiKeyId}`;
  if (principal.kind === 'anonymous') return `ip:${clientAddress}`;
  return `sub:${principal.tenantId}:${principal.subject}`;
}

export function createRateLimiter(config: RateLimitConfig, logger: Logger): RateLimiter {
  if (!config.enabled) {
    return {
      store: 'off',
      ready: async () => {},
      consume: async (budget) => ({ allowed: true, retryAfterSeconds: 0, limit: config[budget].points, remaining: config[budget].points, resetSeconds: 0 }),
      close: async () => {},
    };
  }
  // Commands fail at once while Redis is unreachable (no offline queue), so a request is never
  // held up waiting for it: the in-memory insurance limiter answers instead.
  const redis = config.redisUrl ? new Redis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false }) : null;
  let lastRedisError = 0;
  redis?.on('error', (err) => {
    // One line per minute at most: an outage would otherwise log on every reconnect attempt.
    if (Date.now() - lastRedisError > 60_000) logger.warn({ err }, 'rate limiter: Redis unavailable, using per-replica in-memory limits');
    lastRedisError = Date.now();
  });

  const limiters: Record<Budget, RateLimiterAbstract> = {
    http: build('http'),
    subscription: build('subscription'),
  };

  function build(budget: Budget): RateLimiterAbstract {
    const { points, windowSeconds } = config[budget];
    const keyPrefix = `${config.prefix}:${budget}`;
    const memory = new RateLimiterMemory({ points, duration: windowSeconds, keyPrefix });
    if (!redis) return memory;
    return new RateLimiterRedis({ storeClient: redis, points, duration: windowSeconds, keyPrefix, insuranceLimiter: memory, rejectIfRedisNotReady: true });
  }

  return {
    store: redis ? 'redis' : 'memory',
    async ready(timeoutMs = 5_000) {
      if (!redis || redis.status === 'ready') return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          redis.off('ready', onReady);
          reject(new Error(`rate limiter: Redis not ready within ${timeoutMs} ms`));
        }, timeoutMs);
        const onReady = () => {
          clearTimeout(timer);
          resolve();
        };
        redis.once('ready', onReady);
      });
    },
    async consume(budget, key) {
      const limit = config[budget].points;
      try {
        const res = await limiters[budget].consume(key, 1);
        return { allowed: true, retryAfterSeconds: 0, limit, remaining: res.remainingPoints, resetSeconds: Math.ceil(res.msBeforeNext / 1000) };
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
          return { allowed: false, retryAfterSeconds: seconds, limit, remaining: 0, resetSeconds: seconds };
        }
        // Both the store and the insurance failed: a limiter fault must not take the API down.
        logger.error({ err: rejection, budget }, 'rate limiter failed; request allowed');
        return { allowed: true, retryAfterSeconds: 0, limit, remaining: limit, resetSeconds: 0 };
      }
    },
    async close() {
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** The response headers of a decision (IETF RateLimit fields, and Retry-After when refused). */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetSeconds),
  };
  if (!decision.allowed) headers['retry-after'] = String(decision.retryAfterSeconds);
  return headers;
}

/**
 * The GraphQL error of a refused request, code RATE_LIMITED. HTTP transports answer it with status
 * 429 and rateLimitHeaders; graphql-ws sends it as the subscription's error.
 */
export function rateLimitedError(decision: RateLimitDecision, budget: Budget): GraphQLError {
  const what = budget === 'http' ? 'requests' : 'subscription starts';
  return new GraphQLError(`Too many ${what}: ${decision.limit} per window; retry in ${decision.retryAfterSeconds} s`, {
    extensions: { code: 'RATE_LIMITED', retryAfterSeconds: decision.retryAfterSeconds },
  });
}
