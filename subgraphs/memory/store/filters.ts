// A read's scope as SQL: tenant, expiry, namespace prefixes, kinds, time range, source task, and
// metadata conditions in each engine's own JSON functions.
import { sql, type Expression, type ExpressionBuilder, type RawBuilder, type SqlBool } from 'kysely';
import type { Dialect } from '../../../runtime/db.ts';
import type { MetadataCondition } from '../domain.ts';
import type { Scope } from './rows.ts';
import type { MemoryDB } from './tables.ts';

export type Eb = ExpressionBuilder<MemoryDB, 'memories'>;

/**
 * `tenant_id = ? and id in (...)` answered from the primary key. Without statistics SQLite's
 * planner prefers a (tenant_id, ...) index for the equality and scans the whole tenant (60 ms at
 * 10,000 memories); the unary `+` takes tenant_id out of index selection there.
 */
export function tenantIds(dialect: Dialect, tenantId: string, ids: readonly string[]): RawBuilder<SqlBool> {
  const tenant = dialect === 'sqlite' ? sql`+memories.tenant_id` : sql`memories.tenant_id`;
  return sql<SqlBool>`(${tenant} = ${tenantId} and memories.id in (${sql.join(ids)}))`;
}

/**
 * The scope as one condition; `now` null also matches expired memories (forgetting them). With
 * `ids`, only those memories (looked up by primary key).
 */
export function matches(dialect: Dialect, eb: Eb, tenantId: string, scope: Scope, now: string | null, ids?: readonly string[]): Expression<SqlBool> {
  const f = scope.filter;
  const conditions: Expression<SqlBool>[] = [ids ? tenantIds(dialect, tenantId, ids) : eb('memories.tenant_id', '=', tenantId)];
  if (now !== null) conditions.push(unexpired(eb, now));
  if (scope.prefixes !== null) conditions.push(eb.or(scope.prefixes.map((p) => underNamespace(eb, p))));
  if (f.kinds) conditions.push(eb('memories.kind', 'in', f.kinds));
  if (f.createdAfter) conditions.push(eb('memories.created_at', '>=', f.createdAfter));
  if (f.createdBefore) conditions.push(eb('memories.created_at', '<', f.createdBefore));
  if (f.sourceTaskId) conditions.push(eb('memories.source_task_id', '=', f.sourceTaskId));
  for (const c of f.metadata) conditions.push(metadataMatches(dialect, c));
  return eb.and(conditions);
}

function underNamespace(eb: Eb, prefix: string): Expression<SqlBool> {
  const pattern = `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}/%`;
  return eb.or([eb('memories.namespace', '=', prefix), sql<SqlBool>`${eb.ref('memories.namespace')} like ${pattern} escape '\\'`]);
}

/** One metadata condition in the engine's JSON functions; a field of another type never matches. */
function metadataMatches(dialect: Dialect, c: MetadataCondition): RawBuilder<SqlBool> {
  const segments = c.key.split('.');
  if (dialect === 'sqlite') {
    const path = `$${segments.map((s) => `."${s}"`).join('')}`;
    const type = sql`json_type(memories.metadata, ${path})`;
    const value = sql`json_extract(memories.metadata, ${path})`;
    const eq = (v: string | number | boolean) =>
      typeof v === 'boolean'
        ? sql<SqlBool>`${type} = ${v ? 'true' : 'false'}`
        : typeof v === 'number'
          ? sql<SqlBool>`(${type} in ('integer', 'real') and ${value} = ${v})`
          : sql<SqlBool>`(${type} = 'text' and ${value} = ${v})`;
    if (c.op === 'eq') return eq(c.value);
    if (c.op === 'in') return sql<SqlBool>`(${sql.join(c.values.map(eq), sql` or `)})`;
    const typed = c.type === 'number' ? sql`${type} in ('integer', 'real')` : sql`${type} = 'text'`;
    return sql<SqlBool>`(${sql.join([typed, ...bounds(c, value)], sql` and `)})`;
  }
  const node = sql`(memories.metadata::jsonb #> ${segments}::text[])`;
  const eq = (v: string | number | boolean) => sql<SqlBool>`${node} = ${JSON.stringify(v)}::jsonb`;
  if (c.op === 'eq') return eq(c.value);
  if (c.op === 'in') return sql<SqlBool>`(${sql.join(c.values.map(eq), sql` or `)})`;
  const text = sql`(memories.metadata::jsonb #>> ${segments}::text[])`;
  // The CASE keeps the cast from ever seeing a non-number (PostgreSQL may evaluate in any order).
  const value =
    c.type === 'number'
      ? sql`(case when jsonb_typeof(${node}) = 'number' then ${text}::double precision end)`
      : sql`(case when jsonb_typeof(${node}) = 'string' then ${text} end)`;
  return sql<SqlBool>`(${sql.join(bounds(c, value), sql` and `)})`;
}

function bounds(c: Extract<MetadataCondition, { op: 'range' }>, value: RawBuilder<unknown>): RawBuilder<unknown>[] {
  const parts: RawBuilder<unknown>[] = [];
  if (c.gt !== undefined) parts.push(sql`${value} > ${c.gt}`);
  if (c.gte !== undefined) parts.push(sql`${value} >= ${c.gte}`);
  if (c.lt !== undefined) parts.push(sql`${value} < ${c.lt}`);
  if (c.lte !== undefined) parts.push(sql`${value} <= ${c.lte}`);
  return parts;
}

export function unexpired(eb: Eb, now: string): Expression<SqlBool> {
  return eb.or([eb('memories.expires_at', 'is', null), eb('memories.expires_at', '>', now)]);
}
