// The rules of memories: what a valid memory, filter and search are, who may touch which
// namespace, and how search scores are made. No SQL here (store.ts), no GraphQL (resolvers.ts).
import { agentMismatch, badInput, domainError } from '../../runtime/errors.ts';
import type { RequestIdentity } from '../../runtime/identity.ts';
import { parseId } from '../../runtime/ids.ts';
import { intInRange, numberInRange } from '../../runtime/validate.ts';

export type MemoryKind = 'EPISODIC' | 'SEMANTIC' | 'PROCEDURAL';
export type VectorMetric = 'COSINE' | 'DOT' | 'EUCLIDEAN';
export type SearchMode = 'LEXICAL' | 'VECTOR' | 'HYBRID';
export type MemoryChange = 'REMEMBERED' | 'UPDATED' | 'FORGOTTEN';

export const MAX_TEXT = 32_768;
export const MAX_METADATA_BYTES = 16 * 1024;
export const MAX_DIMENSION = 4096;
const MAX_COMPONENT = 1e9;
export const MAX_BATCH = 100;
export const MAX_K = 100;
const MAX_TTL_SECONDS = 31_536_000;
const MAX_NAMESPACE = 512;
const MAX_SEGMENTS = 16;
const SEGMENT = /^[A-Za-z0-9._:-]+$/;
const MAX_CONDITIONS = 20;
const MAX_IN = 100;
const METADATA_KEY = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;
/** The k of reciprocal rank fusion (Cormack et al. 2009): dampens the weight of top ranks. */
export const RRF_K = 60;

// Event types (the outbox's `type`), one per MemoryChange.
export const MemoryRemembered = 'MemoryRemembered';
export const MemoryUpdated = 'MemoryUpdated';
export const MemoryForgotten = 'MemoryForgotten';
export const MEMORY_EVENTS = [MemoryRemembered, MemoryUpdated, MemoryForgotten];
export const CHANGE_OF: Record<string, MemoryChange> = {
  [MemoryRemembered]: 'REMEMBERED',
  [MemoryUpdated]: 'UPDATED',
  [MemoryForgotten]: 'FORGOTTEN',
};

export interface MemoryEventPayload extends Record<string, unknown> {
  memoryId: string;
  namespace: string;
  version: number;
}

export interface MemorySource {
  agentId: string | null;
  taskId: string | null;
  workflowRunId: string | null;
}

export interface MemoryDraft {
  namespace: string;
  text: string;
  kind: MemoryKind;
  /** JSON object text. */
  metadata: string;
  importance: number;
  vector: number[] | null;
  expiresAt: string | null;
  source: MemorySource;
  /** Set when the subgraph embedded the text (embeddings.ts); null for a client's vector. */
  embeddingModel: string | null;
}

export interface MemoryPatch {
  text?: string;
  kind?: MemoryKind;
  metadata?: string;
  importance?: number;
  vector?: number[] | null;
  expiresAt?: string | null;
  embeddingModel?: string | null;
}

export type Scalar = string | number | boolean;

/** One metadata condition, checked: a path, and eq/in of scalars or a range of one type. */
export type MetadataCondition =
  | { key: string; op: 'eq'; value: Scalar }
  | { key: string; op: 'in'; values: Scalar[] }
  | { key: string; op: 'range'; type: 'number' | 'string'; gt?: Scalar; gte?: Scalar; lt?: Scalar; lte?: Scalar };

export interface MemoryFilter {
  namespacePrefix?: string;
  kinds?: MemoryKind[];
  metadata: MetadataCondition[];
  createdAfter?: string;
  createdBefore?: string;
  /** Set by joins (Task.memories), not by clients. */
  sourceTaskId?: string;
}

export interface SearchRequest {
  text: string | null;
  vector: number[] | null;
  mode: SearchMode;
  metric: VectorMetric;
  filter: MemoryFilter;
  k: number;
  minScore: number | null;
  recencyWeight: number;
  importanceWeight: number;
  recencyHalfLifeSeconds: number;
}

// --- Namespaces and who may use them ---------------------------------------------------------

/** A namespace path, checked and without a trailing slash. */
export function namespacePath(value: string, field: string): string {
  const v = value.trim().replace(/\/+$/, '');
  if (v.length === 0 || v.length > MAX_NAMESPACE) throw badInput(`${field} must have 1 to ${MAX_NAMESPACE} characters`, { field });
  const segments = v.split('/');
  if (segments.length > MAX_SEGMENTS || !segments.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..')) {
    throw badInput(`${field} must be 1 to ${MAX_SEGMENTS} path segments of letters, digits and . _ : - (not . or ..) separated by /, got "${v.slice(0, 80)}"`, {
      field,
    });
  }
  return v;
}

/** Whether `namespace` is `prefix` or below it, segment-wise (agents/a is not under agents/ab). */
export function underPrefix(namespace: string, prefix: string): boolean {
  return namespace === prefix || namespace.startsWith(`${prefix}/`);
}

const SHARED = 'shared';

/** An agent caller writes under agents/<its id>; shared/... needs memory:shared, for anyone. */
export function assertMayWrite(identity: RequestIdentity, namespace: string): void {
  if (underPrefix(namespace, SHARED)) {
    if (!identity.scopes.includes('memory:shared')) {
      throw domainError('FORBIDDEN', `Writing the shared namespace "${namespace}" requires the memory:shared scope`, {
        namespace,
        requiredScope: 'memory:shared',
      });
    }
    return;
  }
  const agentId = identity.agentId;
  if (agentId && !underPrefix(namespace, `agents/${agentId}`)) {
    throw agentMismatch(`This credential acts as agent "${agentId}" and may write only under agents/${agentId} or shared (with memory:shared)`, {
      agentId,
      namespace,
    });
  }
}

/**
 * An agent caller reads its own namespaces and shared/...; a read without a prefix is narrowed to
 * its own (the store adds the shared ones). Other callers read the whole tenant.
 */
export function readablePrefixes(identity: RequestIdentity, prefix: string | undefined): string[] | null {
  const agentId = identity.agentId;
  if (!agentId) return prefix === undefined ? null : [prefix];
  const own = `agents/${agentId}`;
  if (prefix === undefined) return [own, SHARED];
  if (underPrefix(prefix, own) || underPrefix(prefix, SHARED)) return [prefix];
  // A prefix above the agent's own (agents, or agents/<id> for a longer one) still reads only its own.
  if (underPrefix(own, prefix)) return [own, ...(underPrefix(SHARED, prefix) ? [SHARED] : [])];
  throw agentMismatch(`This credential acts as agent "${agentId}" and may read only under ${own} or shared`, { agentId, namespacePrefix: prefix });
}

// --- Inputs ------------------------------------------------------------------------------------

interface RememberArgs {
  namespace: string;
  text: string;
  kind?: MemoryKind | null;
  metadata?: unknown;
  importance?: number | null;
  vector?: readonly number[] | null;
  expiresAt?: string | null;
  ttlSeconds?: number | null;
  source?: { agentId?: string | null; taskId?: string | null; workflowRunId?: string | null } | null;
}

export function normaliseRemember(input: RememberArgs, identity: RequestIdentity, now: number, field = 'input'): MemoryDraft {
  const namespace = namespacePath(input.namespace, `${field}.namespace`);
  assertMayWrite(identity, namespace);
  if (input.expiresAt != null && input.ttlSeconds != null) throw badInput(`${field}: give expiresAt or ttlSeconds, not both`, { field });
  const expiresAt =
    input.ttlSeconds != null
      ? new Date(now + intInRange(input.ttlSeconds, `${field}.ttlSeconds`, 1, MAX_TTL_SECONDS) * 1000).toISOString()
      : expiry(input.expiresAt, `${field}.expiresAt`, now);
  const source = input.source ?? {};
  return {
    namespace,
    text: memoryText(input.text, `${field}.text`),
    kind: input.kind ?? 'SEMANTIC',
    metadata: metadataObject(input.metadata, `${field}.metadata`),
    importance: input.importance == null ? 0.5 : numberInRange(input.importance, `${field}.importance`, 0, 1),
    vector: input.vector == null ? null : vectorOf(input.vector, `${field}.vector`),
    expiresAt,
    source: {
      agentId: source.agentId ? parseId(source.agentId, `${field}.source.agentId`) : (identity.agentId ?? null),
      taskId: source.taskId ? parseId(source.taskId, `${field}.source.taskId`) : null,
      workflowRunId: source.workflowRunId ? parseId(source.workflowRunId, `${field}.source.workflowRunId`) : null,
    },
    embeddingModel: null,
  };
}

export function normaliseBatch(inputs: readonly RememberArgs[], identity: RequestIdentity, now: number): MemoryDraft[] {
  if (inputs.length === 0 || inputs.length > MAX_BATCH)
    throw badInput(`inputs must have 1 to ${MAX_BATCH} memories, got ${inputs.length}`, { field: 'inputs' });
  return inputs.map((input, i) => normaliseRemember(input, identity, now, `inputs[${i}]`));
}

export function normalisePatch(
  input: {
    text?: string | null;
    kind?: MemoryKind | null;
    metadata?: unknown;
    importance?: number | null;
    vector?: readonly number[] | null;
    expiresAt?: string | null;
  },
  now: number,
): MemoryPatch {
  const patch: MemoryPatch = {};
  if (input.text != null) patch.text = memoryText(input.text, 'input.text');
  if (input.kind != null) patch.kind = input.kind;
  if (input.metadata !== undefined) patch.metadata = metadataObject(input.metadata, 'input.metadata');
  if (input.importance != null) patch.importance = numberInRange(input.importance, 'input.importance', 0, 1);
  if (input.vector !== undefined) {
    patch.vector = input.vector === null ? null : vectorOf(input.vector, 'input.vector');
    patch.embeddingModel = null;
  }
  if (input.expiresAt !== undefined) patch.expiresAt = expiry(input.expiresAt, 'input.expiresAt', now);
  if (Object.keys(patch).length === 0) throw badInput('input must change at least one field', { field: 'input' });
  return patch;
}

function memoryText(value: string, field: string): string {
  if (value.trim().length === 0) throw badInput(`${field} must not be empty`, { field });
  if (value.length > MAX_TEXT) throw badInput(`${field} must have at most ${MAX_TEXT} characters, got ${value.length}`, { field, max: MAX_TEXT });
  return value;
}

function expiry(value: string | null | undefined, field: string, now: number): string | null {
  if (value == null) return null;
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw badInput(`${field} must be an ISO-8601 instant`, { field });
  if (at <= now) throw badInput(`${field} must be in the future`, { field });
  return new Date(at).toISOString();
}

function metadataObject(value: unknown, field: string): string {
  if (value === null || value === undefined) return '{}';
  if (typeof value !== 'object' || Array.isArray(value)) throw badInput(`${field} must be a JSON object`, { field });
  const encoded = JSON.stringify(value);
  if (Buffer.byteLength(encoded) > MAX_METADATA_BYTES) throw badInput(`${field} must be at most ${MAX_METADATA_BYTES} bytes of JSON`, { field });
  return encoded;
}

/** 1 to MAX_DIMENSION finite numbers of at most 1e9 (GraphQL Float already refuses NaN; REST JSON cannot carry it). */
export function vectorOf(values: readonly number[], field: string): number[] {
  if (values.length === 0 || values.length > MAX_DIMENSION) {
    throw badInput(`${field} must have 1 to ${MAX_DIMENSION} numbers, got ${values.length}`, { field });
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) throw badInput(`${field}[${i}] must be a finite number`, { field });
    // Bounded so that no distance overflows to Infinity, which no score could carry.
    if (Math.abs(v) > MAX_COMPONENT) throw badInput(`${field}[${i}] must be between -${MAX_COMPONENT} and ${MAX_COMPONENT}`, { field });
  }
  return [...values];
}

export const dimensionMismatch = (expected: number, actual: number, field: string) =>
  domainError('DIMENSION_MISMATCH', `${field} has ${actual} dimensions; this tenant's memory vectors have ${expected}`, {
    field,
    expected,
    actual,
  });

interface FilterArgs {
  namespacePrefix?: string | null;
  kinds?: readonly MemoryKind[] | null;
  metadata?: readonly ConditionArgs[] | null;
  createdAfter?: string | null;
  createdBefore?: string | null;
}

interface ConditionArgs {
  key: string;
  eq?: unknown;
  in?: readonly unknown[] | null;
  gt?: unknown;
  gte?: unknown;
  lt?: unknown;
  lte?: unknown;
}

export function normaliseFilter(args: FilterArgs | null | undefined, field = 'filter'): MemoryFilter {
  const f = args ?? {};
  const filter: MemoryFilter = { metadata: [] };
  if (f.namespacePrefix != null) filter.namespacePrefix = namespacePath(f.namespacePrefix, `${field}.namespacePrefix`);
  if (f.kinds != null && f.kinds.length > 0) filter.kinds = [...new Set(f.kinds)];
  if (f.createdAfter != null) filter.createdAfter = instant(f.createdAfter, `${field}.createdAfter`);
  if (f.createdBefore != null) filter.createdBefore = instant(f.createdBefore, `${field}.createdBefore`);
  const conditions = f.metadata ?? [];
  if (conditions.length > MAX_CONDITIONS) throw badInput(`${field}.metadata must have at most ${MAX_CONDITIONS} conditions`, { field: `${field}.metadata` });
  filter.metadata = conditions.map((c, i) => condition(c, `${field}.metadata[${i}]`));
  return filter;
}

function instant(value: string, field: string): string {
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw badInput(`${field} must be an ISO-8601 instant`, { field });
  return new Date(at).toISOString();
}

function scalar(value: unknown, field: string): Scalar {
  if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw badInput(`${field} must be a string, a finite number or a boolean`, { field });
}

function condition(c: ConditionArgs, field: string): MetadataCondition {
  if (!METADATA_KEY.test(c.key)) throw badInput(`${field}.key must be a dotted path of letters, digits, _ and -, got "${c.key.slice(0, 80)}"`, { field });
  const bounds = (['gt', 'gte', 'lt', 'lte'] as const).filter((b) => c[b] !== undefined && c[b] !== null);
  const given = [c.eq !== undefined && c.eq !== null, c.in != null, bounds.length > 0].filter(Boolean).length;
  if (given !== 1) throw badInput(`${field} must give exactly one of eq, in, or a range (gt, gte, lt, lte)`, { field });
  if (c.eq !== undefined && c.eq !== null) return { key: c.key, op: 'eq', value: scalar(c.eq, `${field}.eq`) };
  if (c.in != null) {
    if (c.in.length === 0 || c.in.length > MAX_IN) throw badInput(`${field}.in must have 1 to ${MAX_IN} values`, { field });
    return { key: c.key, op: 'in', values: c.in.map((v, i) => scalar(v, `${field}.in[${i}]`)) };
  }
  const types = new Set(bounds.map((b) => typeof c[b]));
  const type = [...types][0];
  if (types.size !== 1 || (type !== 'number' && type !== 'string')) {
    throw badInput(`${field}: range bounds must all be numbers or all be strings`, { field });
  }
  const range: MetadataCondition = { key: c.key, op: 'range', type: type as 'number' | 'string' };
  for (const b of bounds) range[b] = scalar(c[b], `${field}.${b}`);
  return range;
}

export function normaliseSearch(input: {
  text?: string | null;
  vector?: readonly number[] | null;
  mode?: SearchMode | null;
  metric?: VectorMetric | null;
  filter?: FilterArgs | null;
  k?: number | null;
  minScore?: number | null;
  recencyWeight?: number | null;
  importanceWeight?: number | null;
  recencyHalfLifeSeconds?: number | null;
}): SearchRequest {
  const text = input.text == null || input.text.trim() === '' ? null : input.text;
  if (text !== null && text.length > 1000) throw badInput('input.text must have at most 1000 characters', { field: 'input.text' });
  const vector = input.vector == null ? null : vectorOf(input.vector, 'input.vector');
  const mode: SearchMode = input.mode ?? (text !== null && vector !== null ? 'HYBRID' : vector !== null ? 'VECTOR' : 'LEXICAL');
  if ((mode === 'LEXICAL' || mode === 'HYBRID') && text === null) throw badInput(`${mode} search needs input.text`, { field: 'input.text' });
  if ((mode === 'VECTOR' || mode === 'HYBRID') && vector === null) throw badInput(`${mode} search needs input.vector`, { field: 'input.vector' });
  const k = intInRange(input.k ?? 10, 'input.k', 1, MAX_K);
  const recencyWeight = numberInRange(input.recencyWeight ?? 0, 'input.recencyWeight', 0, 1);
  const importanceWeight = numberInRange(input.importanceWeight ?? 0, 'input.importanceWeight', 0, 1);
  if (recencyWeight + importanceWeight > 1) throw badInput('input.recencyWeight + input.importanceWeight must be at most 1', { field: 'input.recencyWeight' });
  return {
    text: mode === 'VECTOR' ? null : text,
    vector: mode === 'LEXICAL' ? null : vector,
    mode,
    metric: input.metric ?? 'COSINE',
    filter: normaliseFilter(input.filter, 'input.filter'),
    k,
    minScore: input.minScore == null ? null : numberInRange(input.minScore, 'input.minScore', -1e12, 1e12),
    recencyWeight,
    importanceWeight,
    recencyHalfLifeSeconds: intInRange(input.recencyHalfLifeSeconds ?? 86_400, 'input.recencyHalfLifeSeconds', 1, MAX_TTL_SECONDS * 10),
  };
}

/** The words of a query, for the full-text engines (their own query syntax is never exposed). */
export function queryTerms(text: string): string[] {
  return [...new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, 32))];
}

// --- Scoring -----------------------------------------------------------------------------------

/** Distance under the metric (lower is nearer) and the score shown for it (higher is better). */
export function compare(metric: VectorMetric, a: ArrayLike<number>, b: ArrayLike<number>): { distance: number; similarity: number } {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
    l2 += (x - y) * (x - y);
  }
  if (metric === 'DOT') return { distance: -dot, similarity: dot };
  if (metric === 'EUCLIDEAN') {
    const d = Math.sqrt(l2);
    return { distance: d, similarity: 1 / (1 + d) };
  }
  const cos = na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
  return { distance: 1 - cos, similarity: cos };
}

/** 2^(−age / halfLife): 1 for a memory written now, 0.5 one half-life ago. */
export function recencyOf(createdAt: string, now: number, halfLifeSeconds: number): number {
  const ageSeconds = Math.max(0, (now - Date.parse(createdAt)) / 1000);
  return 2 ** (-ageSeconds / halfLifeSeconds);
}
