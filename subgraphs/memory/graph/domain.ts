// The rules of the knowledge graph: what a valid entity, relation, traversal and search are, and
// the limits that keep every traversal bounded. No SQL here (store.ts), no GraphQL (resolvers.ts).
import { badInput, domainError } from '../../../runtime/errors.ts';
import type { RequestIdentity } from '../../../runtime/identity.ts';
import { parseId } from '../../../runtime/ids.ts';
import { intInRange, numberInRange } from '../../../runtime/validate.ts';
import { assertMayWrite, namespacePath, vectorOf } from '../domain.ts';

export type Direction = 'OUT' | 'IN' | 'BOTH';
export type GraphChange = 'ENTITY_UPSERTED' | 'ENTITY_MERGED' | 'ENTITY_DELETED' | 'RELATION_OPENED' | 'RELATION_CLOSED';

export const MAX_GRAPH_BATCH = 500;
export const MAX_DEPTH = 4;
export const MAX_PATH_DEPTH = 6;
export const MAX_NODES = 1000;
export const MAX_EDGES = 5000;
export const DEFAULT_NODES = 200;
export const DEFAULT_EDGES = 500;
export const MAX_START = 100;
export const MAX_SEARCH_K = 100;
/** Edges a weighted path search may load before it gives up with GRAPH_LIMIT_EXCEEDED. */
export const MAX_PATH_EDGES = 50_000;
const MAX_KEY = 256;
const MAX_NAME = 512;
const MAX_PROPERTIES_BYTES = 16 * 1024;
const TYPE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

// Event types (the outbox's `type`).
export const GraphEntityChanged = 'GraphEntityChanged';
export const GraphRelationChanged = 'GraphRelationChanged';
export const GRAPH_EVENTS = [GraphEntityChanged, GraphRelationChanged];

export interface GraphEventPayload extends Record<string, unknown> {
  change: GraphChange;
  /** The entity types concerned: the entity's, or a relation's two ends'. */
  entityTypes: string[];
  entityId: string | null;
  relationId: string | null;
  namespace: string | null;
}

/** Too much asked of a traversal (depth, nodes, edges, batch): REST 422. */
export const graphLimit = (message: string, details: Record<string, unknown>) => domainError('GRAPH_LIMIT_EXCEEDED', message, details);

export interface EntityDraft {
  type: string;
  key: string;
  name: string;
  namespace: string;
  /** JSON object text. */
  properties: string;
  vector: number[] | null;
  memoryIds: string[];
}

/** Either an id, or a type and key. */
export type EntityRef = { id: string } | { type: string; key: string };

export interface RelationDraft {
  type: string;
  source: EntityRef;
  target: EntityRef;
  properties: string;
  weight: number;
  validFrom: string | null;
  validTo: string | null;
}

export interface ExpandRequest {
  from: EntityRef[];
  depth: number;
  relationTypes: string[] | null;
  entityTypes: string[] | null;
  direction: Direction;
  asOf: string;
  maxNodes: number;
  maxEdges: number;
}

export interface PathRequest {
  from: EntityRef;
  to: EntityRef;
  maxDepth: number;
  weighted: boolean;
  relationTypes: string[] | null;
  direction: Direction;
  asOf: string;
}

export interface EntitySearchRequest {
  text: string | null;
  vector: number[] | null;
  types: string[] | null;
  asOf: string;
  k: number;
}

export function entityType(value: string, field: string): string {
  if (!TYPE.test(value))
    throw badInput(`${field} must start with a letter and have at most 64 letters, digits and _ . : -, got "${value.slice(0, 80)}"`, { field });
  return value;
}

function typeList(values: readonly string[] | null | undefined, field: string): string[] | null {
  if (values == null) return null;
  if (values.length === 0 || values.length > 50) throw badInput(`${field} must have 1 to 50 types`, { field });
  return values.map((v, i) => entityType(v, `${field}[${i}]`));
}

function entityKey(value: string, field: string): string {
  if (value.length === 0 || value.length > MAX_KEY) throw badInput(`${field} must have 1 to ${MAX_KEY} characters`, { field });
  return value;
}

function properties(value: unknown, field: string): string {
  if (value === null || value === undefined) return '{}';
  if (typeof value !== 'object' || Array.isArray(value)) throw badInput(`${field} must be a JSON object`, { field });
  const encoded = JSON.stringify(value);
  if (Buffer.byteLength(encoded) > MAX_PROPERTIES_BYTES) throw badInput(`${field} must be at most ${MAX_PROPERTIES_BYTES} bytes of JSON`, { field });
  return encoded;
}

/** An ISO-8601 instant, normalised; `fallback` when absent. */
export function instant(value: string | null | undefined, field: string, fallback: string): string;
export function instant(value: string | null | undefined, field: string, fallback: null): string | null;
export function instant(value: string | null | undefined, field: string, fallback: string | null): string | null {
  if (value == null) return fallback;
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw badInput(`${field} must be an ISO-8601 instant`, { field });
  return new Date(at).toISOString();
}

function batch<T>(inputs: readonly T[], field: string): void {
  if (inputs.length === 0) throw badInput(`${field} must not be empty`, { field });
  if (inputs.length > MAX_GRAPH_BATCH)
    throw graphLimit(`${field} must have at most ${MAX_GRAPH_BATCH} items, got ${inputs.length}`, { field, max: MAX_GRAPH_BATCH });
}

interface EntityArgs {
  type: string;
  key: string;
  name?: string | null;
  namespace?: string | null;
  properties?: unknown;
  vector?: readonly number[] | null;
  memoryIds?: readonly string[] | null;
}

/** An agent caller's entities default to agents/<id>/graph; other callers' to shared/graph. */
export function defaultNamespace(identity: RequestIdentity): string {
  return identity.agentId ? `agents/${identity.agentId}/graph` : 'shared/graph';
}

export function normaliseEntities(inputs: readonly EntityArgs[], identity: RequestIdentity): EntityDraft[] {
  batch(inputs, 'inputs');
  const seen = new Set<string>();
  return inputs.map((input, i) => {
    const field = `inputs[${i}]`;
    const type = entityType(input.type, `${field}.type`);
    const key = entityKey(input.key, `${field}.key`);
    const id = `${type}\u0000${key}`;
    if (seen.has(id)) throw badInput(`${field}: (${type}, ${key}) is given twice in the batch`, { field });
    seen.add(id);
    const namespace = input.namespace == null ? defaultNamespace(identity) : namespacePath(input.namespace, `${field}.namespace`);
    assertMayWrite(identity, namespace);
    const name = input.name == null ? key : input.name.trim();
    if (name.length === 0 || name.length > MAX_NAME) throw badInput(`${field}.name must have 1 to ${MAX_NAME} characters`, { field: `${field}.name` });
    const memoryIds = (input.memoryIds ?? []).map((m, j) => parseId(m, `${field}.memoryIds[${j}]`));
    if (memoryIds.length > 100) throw badInput(`${field}.memoryIds must have at most 100 ids`, { field: `${field}.memoryIds` });
    return {
      type,
      key,
      name,
      namespace,
      properties: properties(input.properties, `${field}.properties`),
      vector: input.vector == null ? null : vectorOf(input.vector, `${field}.vector`),
      memoryIds: [...new Set(memoryIds)],
    };
  });
}

interface RefArgs {
  id?: string | null;
  type?: string | null;
  key?: string | null;
}

export function entityRef(ref: RefArgs, field: string): EntityRef {
  if (ref.id != null) {
    if (ref.type != null || ref.key != null) throw badInput(`${field}: give id, or type and key, not both`, { field });
    return { id: parseId(ref.id, `${field}.id`) };
  }
  if (ref.type == null || ref.key == null) throw badInput(`${field}: give id, or type and key`, { field });
  return { type: entityType(ref.type, `${field}.type`), key: entityKey(ref.key, `${field}.key`) };
}

interface RelationArgs {
  type: string;
  source: RefArgs;
  target: RefArgs;
  properties?: unknown;
  weight?: number | null;
  validFrom?: string | null;
  validTo?: string | null;
}

export function normaliseRelations(inputs: readonly RelationArgs[]): RelationDraft[] {
  batch(inputs, 'inputs');
  return inputs.map((input, i) => {
    const field = `inputs[${i}]`;
    const validFrom = instant(input.validFrom, `${field}.validFrom`, null);
    const validTo = instant(input.validTo, `${field}.validTo`, null);
    if (validFrom !== null && validTo !== null && validTo <= validFrom)
      throw badInput(`${field}.validTo must be after validFrom`, { field: `${field}.validTo` });
    return {
      type: entityType(input.type, `${field}.type`),
      source: entityRef(input.source, `${field}.source`),
      target: entityRef(input.target, `${field}.target`),
      properties: properties(input.properties, `${field}.properties`),
      // Non-negative: weighted shortest paths add them up.
      weight: input.weight == null ? 1 : numberInRange(input.weight, `${field}.weight`, 0, 1e9),
      validFrom,
      validTo,
    };
  });
}

function bounded(value: number | null | undefined, field: string, fallback: number, min: number, max: number): number {
  if (value == null) return fallback;
  if (!Number.isInteger(value) || value < min) throw badInput(`${field} must be an integer of at least ${min}`, { field });
  if (value > max) throw graphLimit(`${field} must be at most ${max}, got ${value}`, { field, max });
  return value;
}

interface ExpandArgs {
  from: readonly RefArgs[];
  depth?: number | null;
  relationTypes?: readonly string[] | null;
  entityTypes?: readonly string[] | null;
  direction?: Direction | null;
  asOf?: string | null;
  maxNodes?: number | null;
  maxEdges?: number | null;
}

export function normaliseExpand(input: ExpandArgs, now: string): ExpandRequest {
  if (input.from.length === 0) throw badInput('input.from must name at least one entity', { field: 'input.from' });
  if (input.from.length > MAX_START) throw graphLimit(`input.from must have at most ${MAX_START} entities`, { field: 'input.from', max: MAX_START });
  return {
    from: input.from.map((r, i) => entityRef(r, `input.from[${i}]`)),
    depth: bounded(input.depth, 'input.depth', 2, 1, MAX_DEPTH),
    relationTypes: typeList(input.relationTypes, 'input.relationTypes'),
    entityTypes: typeList(input.entityTypes, 'input.entityTypes'),
    direction: input.direction ?? 'BOTH',
    asOf: instant(input.asOf, 'input.asOf', now),
    maxNodes: bounded(input.maxNodes, 'input.maxNodes', DEFAULT_NODES, 1, MAX_NODES),
    maxEdges: bounded(input.maxEdges, 'input.maxEdges', DEFAULT_EDGES, 0, MAX_EDGES),
  };
}

interface PathArgs {
  from: RefArgs;
  to: RefArgs;
  maxDepth?: number | null;
  weighted?: boolean | null;
  relationTypes?: readonly string[] | null;
  direction?: Direction | null;
  asOf?: string | null;
}

export function normalisePath(input: PathArgs, now: string): PathRequest {
  return {
    from: entityRef(input.from, 'input.from'),
    to: entityRef(input.to, 'input.to'),
    maxDepth: bounded(input.maxDepth, 'input.maxDepth', 4, 1, MAX_PATH_DEPTH),
    weighted: input.weighted ?? false,
    relationTypes: typeList(input.relationTypes, 'input.relationTypes'),
    direction: input.direction ?? 'OUT',
    asOf: instant(input.asOf, 'input.asOf', now),
  };
}

interface SearchArgs {
  text?: string | null;
  vector?: readonly number[] | null;
  types?: readonly string[] | null;
  asOf?: string | null;
  k?: number | null;
}

export function normaliseEntitySearch(input: SearchArgs, now: string): EntitySearchRequest {
  const text = input.text?.trim() || null;
  if (text !== null && text.length > 1000) throw badInput('input.text must have at most 1,000 characters', { field: 'input.text' });
  const vector = input.vector == null ? null : vectorOf(input.vector, 'input.vector');
  if (text === null && vector === null) throw badInput('input: give text, vector or both', { field: 'input' });
  return {
    text,
    vector,
    types: typeList(input.types, 'input.types'),
    asOf: instant(input.asOf, 'input.asOf', now),
    k: input.k == null ? 10 : intInRange(input.k, 'input.k', 1, MAX_SEARCH_K),
  };
}

/** Page size of relations/neighbours lists. */
export function listLimit(first: number | null | undefined): number {
  return bounded(first, 'first', 100, 1, MAX_NODES);
}

/** How many states of an entity's history: 1 to 100, default 20. */
export function historyLimit(first: number | null | undefined): number {
  return bounded(first, 'first', 20, 1, 100);
}

/** Words of a full-text query: letters and digits only, never the engine's query syntax. */
export function searchTerms(text: string): string[] {
  return [...new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])].slice(0, 32);
}

/** Text a full-text index keeps of an entity: its name and its properties' string values. */
export function searchableText(name: string, propertiesJson: string): string {
  const words: string[] = [name];
  const walk = (v: unknown) => {
    if (typeof v === 'string' || typeof v === 'number') words.push(String(v));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        words.push(k);
        walk(x);
      }
    }
  };
  walk(JSON.parse(propertiesJson));
  return words.join(' ');
}
