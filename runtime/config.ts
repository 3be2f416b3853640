// Configuration from environment variables. Every service declares what it reads as a spec;
// all bad values are reported together at start, each with the variable name and what was wrong,
// so an operator fixes them in one go instead of one restart per typo.

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

interface Field<T> {
  /** Parses a raw value; throws an Error whose message explains the expected form. */
  parse(raw: string): T;
  default?: T | (() => T);
  doc: string;
}

type Spec = Record<string, Field<unknown>>;
export type ConfigOf<S extends Spec> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

export const env = {
  string(doc: string, def?: string): Field<string> {
    return { doc, default: def, parse: (raw) => raw };
  },
  optionalString(doc: string): Field<string | undefined> {
    return { doc, default: undefined, parse: (raw) => (raw === '' ? undefined : raw) };
  },
  port(doc: string, def: number): Field<number> {
    return {
      doc,
      default: def,
      parse(raw) {
        const n = Number(raw);
        if (!/^\d+$/.test(raw) || n > 65535) throw new Error(`expected a port number 0-65535, got "${raw}"`);
        return n;
      },
    };
  },
  int(doc: string, def: number, min = 0): Field<number> {
    return {
      doc,
      default: def,
      parse(raw) {
        if (!/^-?\d+$/.test(raw) || Number(raw) < min) throw new Error(`expected an integer >= ${min}, got "${raw}"`);
        return Number(raw);
      },
    };
  },
  bool(doc: string, def: boolean): Field<boolean> {
    return {
      doc,
      default: def,
      parse(raw) {
        const v = raw.toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(v)) return true;
        if (['0', 'false', 'no', 'off'].includes(v)) return false;
        throw new Error(`expected true or false, got "${raw}"`);
      },
    };
  },
  url(doc: string, protocols: string[], def?: string): Field<string | undefined> {
    return {
      doc,
      default: def,
      parse(raw) {
        if (raw === '') return undefined;
        let u: URL;
        try {
          u = new URL(raw);
        } catch {
          throw new Error(`expected a URL (${protocols.join(', ')}), got "${raw}"`);
        }
        if (!protocols.includes(u.protocol.replace(/:$/, ''))) {
          throw new Error(`expected a ${protocols.join(' or ')} URL, got protocol "${u.protocol}"`);
        }
        return raw;
      },
    };
  },
  /** One URL or several, comma-separated (the replicas of one service); each checked as url() does. */
  urls(doc: string, protocols: string[], def: string | string[] = []): Field<string[]> {
    const one = env.url(doc, protocols);
    return {
      doc,
      default: typeof def === 'string' ? def.split(',') : def,
      parse(raw) {
        const urls = raw
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '');
        if (urls.length === 0) throw new Error(`expected one or more ${protocols.join(' or ')} URLs, comma-separated, got "${raw}"`);
        return [...new Set(urls.map((u) => one.parse(u) as string))];
      },
    };
  },
  oneOf<T extends string>(doc: string, values: readonly T[], def: T): Field<T> {
    return {
      doc,
      default: def,
      parse(raw) {
        if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(', ')}, got "${raw}"`);
        return raw as T;
      },
    };
  },
};

export function loadConfig<S extends Spec>(spec: S, source: Env = process.env): ConfigOf<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(spec)) {
    const raw = source[name];
    if (raw === undefined || (raw === '' && field.default !== undefined)) {
      const def = field.default;
      out[name] = typeof def === 'function' ? (def as () => unknown)() : def;
      continue;
    }
    try {
      out[name] = field.parse(raw);
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message} (${field.doc})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** The variables every service reads, whatever it is. */
export const commonSpec = {
  NODE_ENV: env.oneOf('runtime mode', ['development', 'production', 'test'] as const, 'development'),
  HOST: env.string('interface to listen on', '127.0.0.1'),
  LOG_LEVEL: env.oneOf('pino log level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  DATA_DIR: env.string('folder for the embedded SQLite files', './data'),
  DATABASE_URL: env.url('PostgreSQL connection string; when set, PostgreSQL replaces SQLite', ['postgres', 'postgresql']),
  DATABASE_SCHEMA_PREFIX: env.string('prefix of each subgraph’s PostgreSQL schema name', ''),
  REDIS_URL: env.url('Redis URL; when set, domain events go through Redis pub/sub', ['redis', 'rediss']),
  EVENT_CHANNEL_PREFIX: env.string('prefix of the Redis pub/sub channels', 'agentplatform'),
  SHUTDOWN_TIMEOUT_MS: env.int('how long in-flight requests may run after SIGTERM', 10_000, 0),
  MAX_BODY_BYTES: env.int('largest accepted request body in bytes', 1_048_576, 1024),
};

/** The variables only subgraphs read. */
export const subgraphSpec = {
  SQLITE_GROUP_COMMIT_MAX: env.int('most concurrent SQLite writes committed together with one fsync (1: each alone)', 64, 1),
  DATABASE_POOL_MAX: env.int('PostgreSQL: most connections one subgraph process opens', 10, 1),
  DATABASE_POOL_TIMEOUT_MS: env.int('PostgreSQL: longest a query waits for a free pooled connection, in ms', 10_000, 1),
  EVENT_RETENTION_SECONDS: env.int('how long published events stay in the outbox, for subscribers that resume (afterSequence)', 86_400, 0),
  OUTBOX_RELAY_INTERVAL_MS: env.int('how often the outbox relay publishes events left unpublished and prunes expired ones, in milliseconds', 1000, 10),
  REDIS_CONNECT_TIMEOUT_MS: env.int('longest wait for a Redis (re)connection, in milliseconds', 2000, 1),
  REDIS_COMMAND_TIMEOUT_MS: env.int('longest wait for a Redis command (publish, subscribe), in milliseconds', 1000, 1),
  TEST_CRASH_AFTER_COMMIT_OF: env.optionalString(
    'tests only (NODE_ENV=test): the subgraph SIGKILLs itself right after committing an event of this type, before publishing it',
  ),
};

export type CommonConfig = ConfigOf<typeof commonSpec>;
