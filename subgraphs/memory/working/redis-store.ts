// Working memory in Redis (REDIS_URL): one hash per entry (value, version, expiry, time), expired
// by Redis itself, every write one Lua script, so compare-and-set and increments are atomic
// across replicas. Keys: <EVENT_CHANNEL_PREFIX>:wm:["tenant","namespace","key"] (JSON: unambiguous).
import { Redis } from 'ioredis';
import { nowIso } from '../../../runtime/db.ts';
import { counterOverflow, type ExpectedVersion, MAX_COUNTER, notACounter, versionConflict, type WorkingMemoryEntryRow } from './domain.ts';
import type { WorkingMemoryStore } from './store.ts';

// ARGV: value, expected version (-1: any), expire-at ms (0: none), expiry ISO ('' none), now ISO.
const SET = `
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
local expected = tonumber(ARGV[2])
if expected >= 0 and expected ~= ver then return {0, ver} end
ver = ver + 1
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', ver, 'upd', ARGV[5], 'exp', ARGV[4])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) else redis.call('PERSIST', KEYS[1]) end
return {1, ver}
`;

// ARGV: by, expire-at ms (0: keep), expiry ISO, now ISO, largest magnitude.
const INCREMENT = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'ver')
local value = 0
local ver = 0
if cur[2] then
  ver = tonumber(cur[2])
  value = tonumber(cur[1])
  if value == nil or value ~= math.floor(value) or math.abs(value) > tonumber(ARGV[5]) then return {-1} end
end
value = value + tonumber(ARGV[1])
if math.abs(value) > tonumber(ARGV[5]) then return {-2} end
ver = ver + 1
local text = string.format('%.0f', value)
redis.call('HSET', KEYS[1], 'v', text, 'ver', ver, 'upd', ARGV[4])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], 'exp', ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
elseif not cur[2] then
  redis.call('HSET', KEYS[1], 'exp', '')
end
return {1, ver, text, redis.call('HGET', KEYS[1], 'exp')}
`;

// ARGV: expected version (-1: any).
const DELETE = `
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
local expected = tonumber(ARGV[1])
if expected >= 0 and expected ~= ver then return {0, ver} end
if ver == 0 then return {1, 0} end
redis.call('DEL', KEYS[1])
return {1, 1}
`;

type Reply = [number, number?];

export class RedisWorkingMemory implements WorkingMemoryStore {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly clock: () => number = Date.now,
  ) {
    // Fail a request fast while Redis is away rather than queue it behind a reconnect.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 5_000, lazyConnect: true });
  }

  private keyOf(tenantId: string, namespace: string, key: string): string {
    return `${this.prefix}:wm:${JSON.stringify([tenantId, namespace, key])}`;
  }

  async get(tenantId: string, namespace: string, key: string): Promise<WorkingMemoryEntryRow | null> {
    const h = await this.redis.hgetall(this.keyOf(tenantId, namespace, key));
    if (h.ver === undefined || h.v === undefined) return null;
    return { namespace, key, valueJson: h.v, version: Number(h.ver), expiresAt: h.exp ? h.exp : null, updatedAt: h.upd ?? '' };
  }

  async set(
    tenantId: string,
    namespace: string,
    key: string,
    valueJson: string,
    expiresAt: string | null,
    expected: ExpectedVersion,
  ): Promise<WorkingMemoryEntryRow> {
    const now = nowIso(this.clock);
    const [ok, version] = (await this.redis.eval(
      SET,
      1,
      this.keyOf(tenantId, namespace, key),
      valueJson,
      expected ?? -1,
      expiresAt ? Date.parse(expiresAt) : 0,
      expiresAt ?? '',
      now,
    )) as Reply;
    if (ok !== 1) throw versionConflict(namespace, key, expected ?? 0, version ?? 0);
    return { namespace, key, valueJson, version: version ?? 1, expiresAt, updatedAt: now };
  }

  async increment(tenantId: string, namespace: string, key: string, by: number, expiresAt: string | null): Promise<WorkingMemoryEntryRow> {
    const now = nowIso(this.clock);
    const [ok, version, valueJson, expiry] = (await this.redis.eval(
      INCREMENT,
      1,
      this.keyOf(tenantId, namespace, key),
      by,
      expiresAt ? Date.parse(expiresAt) : 0,
      expiresAt ?? '',
      now,
      MAX_COUNTER,
    )) as [number, number?, string?, string?];
    if (ok === -1) throw notACounter(namespace, key);
    if (ok === -2) throw counterOverflow(namespace, key);
    // The script's own answer: a read after it could see a later writer's version.
    return { namespace, key, valueJson: valueJson ?? '0', version: version ?? 1, expiresAt: expiry ? expiry : null, updatedAt: now };
  }

  async delete(tenantId: string, namespace: string, key: string, expected: ExpectedVersion): Promise<boolean> {
    const [ok, deleted] = (await this.redis.eval(DELETE, 1, this.keyOf(tenantId, namespace, key), expected ?? -1)) as Reply;
    if (ok !== 1) throw versionConflict(namespace, key, expected ?? 0, deleted ?? 0);
    return deleted === 1;
  }

  async sweepExpired(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
