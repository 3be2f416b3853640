// Query limits and rate limits, from the environment. The defaults let every documented query
// and a full introspection through while stopping depth, alias, directive, token and cost bombs.
import { commonSpec, env, loadConfig } from '../../runtime/config.ts';

export const limitsSpec = {
  REDIS_URL: commonSpec.REDIS_URL,
  MAX_QUERY_DEPTH: env.int('deepest field nesting an operation may have (fragments flattened)', 12, 1),
  MAX_QUERY_ALIASES: env.int('most aliases in one operation', 15, 0),
  MAX_QUERY_DIRECTIVES: env.int('most directives in one operation', 50, 0),
  MAX_QUERY_TOKENS: env.int('most lexical tokens in one GraphQL document; parsing stops there', 2000, 1),
  MAX_QUERY_COST: env.int('highest estimated cost of one operation (GraphQL Armor: objects 2, scalars 1, ×1.5 per level)', 20000, 1),
  RATE_LIMIT_ENABLED: env.bool('rate limit callers (per API key, user, or address for anonymous callers)', true),
  RATE_LIMIT_HTTP_REQUESTS: env.int('GraphQL-over-HTTP and REST requests a caller may make per window', 600, 1),
  RATE_LIMIT_HTTP_WINDOW_SECONDS: env.int('the HTTP rate limit window, in seconds', 60, 1),
  RATE_LIMIT_SUBSCRIPTIONS: env.int('subscriptions a caller may start per window', 60, 1),
  RATE_LIMIT_SUBSCRIPTION_WINDOW_SECONDS: env.int('the subscription rate limit window, in seconds', 60, 1),
  RATE_LIMIT_PREFIX: env.string('prefix of the rate limiter’s Redis keys (with REDIS_URL set, replicas share budgets)', 'agentplatform:ratelimit'),
};

export interface QueryLimits {
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  maxTokens: number;
  maxCost: number;
}

export interface RateLimitConfig {
  enabled: boolean;
  http: { points: number; windowSeconds: number };
  subscription: { points: number; windowSeconds: number };
  redisUrl: string | undefined;
  prefix: string;
}

export interface LimitsConfig {
  query: QueryLimits;
  rateLimit: RateLimitConfig;
}

export function loadLimitsConfig(source: Record<string, string | undefined> = process.env): LimitsConfig {
  const c = loadConfig(limitsSpec, source);
  return {
    query: {
      maxDepth: c.MAX_QUERY_DEPTH,
      maxAliases: c.MAX_QUERY_ALIASES,
      maxDirectives: c.MAX_QUERY_DIRECTIVES,
      maxTokens: c.MAX_QUERY_TOKENS,
      maxCost: c.MAX_QUERY_COST,
    },
    rateLimit: {
      enabled: c.RATE_LIMIT_ENABLED,
      http: { points: c.RATE_LIMIT_HTTP_REQUESTS, windowSeconds: c.RATE_LIMIT_HTTP_WINDOW_SECONDS },
      subscription: { points: c.RATE_LIMIT_SUBSCRIPTIONS, windowSeconds: c.RATE_LIMIT_SUBSCRIPTION_WINDOW_SECONDS },
      redisUrl: c.REDIS_URL,
      prefix: c.RATE_LIMIT_PREFIX,
    },
  };
}
