// The rules of discovery: what valid settings, services, peers and needs are, and what an agent's
// profile (the read model of the agents subgraph's agent) looks like. No SQL here (store.ts), no
// GraphQL (resolvers.ts); matching is matching.ts, cards and signatures cards.ts.
import { badInput } from '../../runtime/errors.ts';
import { httpUrl, intInRange, numberInRange, optionalText, text } from '../../runtime/validate.ts';

export type Health = 'HEALTHY' | 'STALE' | 'OFFLINE';
export type ServiceKind = 'MCP_SERVER' | 'HTTP_TOOL' | 'MODEL_ENDPOINT';
export type ServiceStatus = 'UNKNOWN' | 'UP' | 'DOWN';
export type HealthCheckMode = 'TTL' | 'PROBE';
export type PeerKind = 'DUADP' | 'A2A_CARD';
export type TrustLevel = 'LOW' | 'MEDIUM' | 'HIGH';
export type PeerState = 'PENDING' | 'OK' | 'FAILING';

// Event types (the outbox's `type`).
export const ServiceStatusChanged = 'ServiceStatusChanged';
export const SERVICE_EVENTS = [ServiceStatusChanged];

export interface ServiceStatusPayload extends Record<string, unknown> {
  serviceId: string;
  from: ServiceStatus;
  to: ServiceStatus;
  reason: string | null;
}

/** The agents subgraph's events discovery listens to (their names are the contract). */
export const AGENT_EVENTS = {
  registered: 'AgentRegistered',
  updated: 'AgentUpdated',
  statusChanged: 'AgentStatusChanged',
  heartbeat: 'AgentHeartbeat',
} as const;
export const TASK_STATE_CHANGED = 'TaskStateChanged';
/** Task states in which an agent holds a task (its current load). */
export const ACTIVE_TASK_STATES = ['ASSIGNED', 'WORKING', 'INPUT_REQUIRED'];

export interface AgentSkill {
  id: string;
  name: string;
  description: string | null;
  tags: string[];
  examples: string[];
  inputModes: string[];
  outputModes: string[];
}

/** An agent as the agents subgraph last told discovery (never written by discovery's clients). */
export interface AgentProfile {
  tenantId: string;
  agentId: string;
  name: string;
  description: string | null;
  agentVersion: string;
  endpointUrl: string | null;
  provider: { organization: string; url: string | null } | null;
  capabilities: { streaming: boolean; pushNotifications: boolean };
  skills: AgentSkill[];
  labels: { key: string; value: string }[];
  defaultInputModes: string[];
  defaultOutputModes: string[];
  status: string;
  heartbeatIntervalSeconds: number;
  lastHeartbeatAt: string | null;
  syncedAt: string;
}

export interface InterfaceSpec {
  url: string;
  protocolBinding: string;
  protocolVersion: string;
}

/** Discovery's own settings of an agent. */
export interface ListingSettings {
  public: boolean;
  interfaces: InterfaceSpec[];
  securitySchemes: Record<string, unknown>;
  securityRequirements: unknown[];
  documentationUrl: string | null;
  iconUrl: string | null;
}

export const DEFAULT_SETTINGS: ListingSettings = {
  public: false,
  interfaces: [],
  securitySchemes: {},
  securityRequirements: [],
  documentationUrl: null,
  iconUrl: null,
};

/** HEALTHY within 2 heartbeat intervals, STALE within 5, else OFFLINE (the agents subgraph's rule). */
export function healthOf(lastHeartbeatAt: string | null, intervalSeconds: number, now: number): Health {
  if (lastHeartbeatAt === null) return 'OFFLINE';
  const elapsed = now - Date.parse(lastHeartbeatAt);
  if (Number.isNaN(elapsed)) return 'OFFLINE';
  if (elapsed <= 2 * intervalSeconds * 1000) return 'HEALTHY';
  if (elapsed <= 5 * intervalSeconds * 1000) return 'STALE';
  return 'OFFLINE';
}

export const HEALTH_RANK: Record<Health, number> = { OFFLINE: 0, STALE: 1, HEALTHY: 2 };

// --- Inputs ------------------------------------------------------------------------------------

const MAX_JSON_BYTES = 16 * 1024;
const BINDING = /^[A-Za-z0-9+._-]{1,40}$/;

function jsonObject(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badInput(`${field} must be a JSON object`, { field });
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_JSON_BYTES) throw badInput(`${field} must be at most ${MAX_JSON_BYTES} bytes of JSON`, { field });
  return value as Record<string, unknown>;
}

function jsonArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw badInput(`${field} must be a JSON array`, { field });
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_JSON_BYTES) throw badInput(`${field} must be at most ${MAX_JSON_BYTES} bytes of JSON`, { field });
  return value;
}

export interface SettingsInput {
  public?: boolean | null;
  interfaces?: readonly { url: string; protocolBinding: string; protocolVersion?: string | null }[] | null;
  securitySchemes?: unknown;
  securityRequirements?: unknown;
  documentationUrl?: string | null;
  iconUrl?: string | null;
}

/** The settings after applying the input to `current`. */
export function applySettings(current: ListingSettings, input: SettingsInput): ListingSettings {
  const next = { ...current };
  if (input.public != null) next.public = input.public;
  if (input.interfaces != null) {
    if (input.interfaces.length > 10) throw badInput('input.interfaces must have at most 10 entries', { field: 'input.interfaces' });
    next.interfaces = input.interfaces.map((i, n) => {
      const field = `input.interfaces[${n}]`;
      if (!BINDING.test(i.protocolBinding)) throw badInput(`${field}.protocolBinding must be 1 to 40 letters, digits and + . _ -`, { field });
      return {
        url: httpUrl(i.url, `${field}.url`),
        protocolBinding: i.protocolBinding,
        protocolVersion: text(i.protocolVersion ?? '1.0', `${field}.protocolVersion`, { max: 20 }),
      };
    });
  }
  if (input.securitySchemes !== undefined)
    next.securitySchemes = input.securitySchemes === null ? {} : jsonObject(input.securitySchemes, 'input.securitySchemes');
  if (input.securityRequirements !== undefined)
    next.securityRequirements = input.securityRequirements === null ? [] : jsonArray(input.securityRequirements, 'input.securityRequirements');
  if (input.documentationUrl !== undefined) next.documentationUrl = input.documentationUrl ? httpUrl(input.documentationUrl, 'input.documentationUrl') : null;
  if (input.iconUrl !== undefined) next.iconUrl = input.iconUrl ? httpUrl(input.iconUrl, 'input.iconUrl') : null;
  return next;
}

export interface ServiceDraft {
  name: string;
  kind: ServiceKind;
  endpoint: string;
  metadata: string;
  owner: string | null;
  mode: HealthCheckMode;
  ttlSeconds: number | null;
  probeUrl: string | null;
  probeIntervalSeconds: number | null;
  probeTimeoutMs: number | null;
}

function serviceEndpoint(value: string, field: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw badInput(`${field} must be an absolute URL`, { field });
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) throw badInput(`${field} must be an http(s) or ws(s) URL`, { field });
  if (value.length > 2048) throw badInput(`${field} must have at most 2,048 characters`, { field });
  return value;
}

export function normaliseService(input: {
  name: string;
  kind: ServiceKind;
  endpoint: string;
  metadata?: unknown;
  owner?: string | null;
  mode?: HealthCheckMode | null;
  ttlSeconds?: number | null;
  probeUrl?: string | null;
  probeIntervalSeconds?: number | null;
  probeTimeoutMs?: number | null;
}): ServiceDraft {
  const mode = input.mode ?? 'TTL';
  const endpoint = serviceEndpoint(input.endpoint, 'input.endpoint');
  if (mode === 'TTL' && (input.probeUrl != null || input.probeIntervalSeconds != null || input.probeTimeoutMs != null)) {
    throw badInput('probeUrl, probeIntervalSeconds and probeTimeoutMs apply to mode PROBE only', { field: 'input.mode' });
  }
  if (mode === 'PROBE' && input.ttlSeconds != null) throw badInput('ttlSeconds applies to mode TTL only', { field: 'input.ttlSeconds' });
  return {
    name: text(input.name, 'input.name', { min: 1, max: 200 }),
    kind: input.kind,
    endpoint,
    metadata: input.metadata == null ? '{}' : JSON.stringify(jsonObject(input.metadata, 'input.metadata')),
    owner: optionalText(input.owner, 'input.owner', 200),
    mode,
    ttlSeconds: mode === 'TTL' ? intInRange(input.ttlSeconds ?? 60, 'input.ttlSeconds', 5, 86_400) : null,
    probeUrl: mode === 'PROBE' ? (input.probeUrl ? httpUrl(input.probeUrl, 'input.probeUrl') : httpUrl(endpoint, 'input.endpoint')) : null,
    probeIntervalSeconds: mode === 'PROBE' ? intInRange(input.probeIntervalSeconds ?? 30, 'input.probeIntervalSeconds', 1, 3600) : null,
    probeTimeoutMs: mode === 'PROBE' ? intInRange(input.probeTimeoutMs ?? 2000, 'input.probeTimeoutMs', 50, 60_000) : null,
  };
}

export interface PeerDraft {
  name: string;
  kind: PeerKind;
  url: string;
  trust: TrustLevel;
  jwks: string | null;
  syncIntervalSeconds: number;
}

export function normalisePeer(input: {
  name: string;
  kind: PeerKind;
  url: string;
  trust?: TrustLevel | null;
  jwks?: unknown;
  syncIntervalSeconds?: number | null;
}): PeerDraft {
  let jwks: string | null = null;
  if (input.jwks != null) {
    const keys = (jsonObject(input.jwks, 'input.jwks') as { keys?: unknown }).keys;
    if (!Array.isArray(keys) || keys.length === 0) throw badInput('input.jwks must be a JWKS: { "keys": [ ...public JWKs ] }', { field: 'input.jwks' });
    jwks = JSON.stringify(input.jwks);
  }
  return {
    name: text(input.name, 'input.name', { min: 1, max: 200 }),
    kind: input.kind,
    url: httpUrl(input.url, 'input.url').replace(/\/+$/, ''),
    trust: input.trust ?? 'LOW',
    jwks,
    syncIntervalSeconds: intInRange(input.syncIntervalSeconds ?? 300, 'input.syncIntervalSeconds', 10, 86_400),
  };
}

/** The delay before the next pull of a peer after `failures` failures in a row: doubling, capped. */
export function backoffSeconds(intervalSeconds: number, failures: number, maxSeconds = 3600): number {
  if (failures <= 0) return intervalSeconds;
  return Math.min(maxSeconds, intervalSeconds * 2 ** Math.min(failures, 16));
}

// --- Needs -------------------------------------------------------------------------------------

export interface Weights {
  skills: number;
  text: number;
  health: number;
  load: number;
  success: number;
}

export const DEFAULT_WEIGHTS: Weights = { skills: 4, text: 2.5, health: 1.5, load: 1, success: 1 };

export interface Need {
  skills: string[];
  requireAllSkills: boolean;
  text: string | null;
  labels: { key: string; value: string | null }[];
  minHealth: Health | null;
  maxActiveTasks: number | null;
  includeRemote: boolean;
  limit: number;
  /** Normalised: they sum to 1. */
  weights: Weights;
}

export function normaliseNeed(input: {
  skills?: readonly string[] | null;
  requireAllSkills?: boolean | null;
  text?: string | null;
  labels?: readonly { key: string; value?: string | null }[] | null;
  region?: string | null;
  minHealth?: Health | null;
  maxActiveTasks?: number | null;
  includeRemote?: boolean | null;
  limit?: number | null;
  weights?: Partial<Record<keyof Weights, number | null>> | null;
}): Need {
  const skills = [...new Set((input.skills ?? []).map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))];
  if (skills.length > 20) throw badInput('need.skills must have at most 20 entries', { field: 'need.skills' });
  const textValue = input.text == null || input.text.trim() === '' ? null : input.text;
  if (textValue !== null && textValue.length > 1000) throw badInput('need.text must have at most 1,000 characters', { field: 'need.text' });
  if (skills.length === 0 && textValue === null) throw badInput('A need names skills, text or both', { field: 'need' });
  const labels = (input.labels ?? []).map((l) => ({ key: l.key, value: l.value ?? null }));
  if (input.region != null) labels.push({ key: 'region', value: input.region });
  const raw = { ...DEFAULT_WEIGHTS };
  for (const key of Object.keys(raw) as (keyof Weights)[]) {
    const w = input.weights?.[key];
    if (w != null) raw[key] = numberInRange(w, `need.weights.${key}`, 0, 10);
  }
  const sum = Object.values(raw).reduce((a, b) => a + b, 0);
  if (sum === 0) throw badInput('need.weights must not all be 0', { field: 'need.weights' });
  const weights = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v / sum])) as unknown as Weights;
  return {
    skills,
    requireAllSkills: input.requireAllSkills ?? false,
    text: textValue,
    labels,
    minHealth: input.minHealth ?? null,
    maxActiveTasks: input.maxActiveTasks == null ? null : intInRange(input.maxActiveTasks, 'need.maxActiveTasks', 0, 1_000_000),
    includeRemote: input.includeRemote ?? false,
    limit: intInRange(input.limit ?? 10, 'need.limit', 1, 100),
    weights,
  };
}

// --- Text --------------------------------------------------------------------------------------

const STOP = new Set(['a', 'an', 'and', 'or', 'the', 'of', 'to', 'in', 'for', 'on', 'with', 'by', 'is', 'are', 'be', 'it', 'that', 'this', 'from', 'at', 'as']);

/** Lower-case words, stop words dropped, a plural -s removed: what text relevance compares. */
export function terms(value: string): string[] {
  const out: string[] = [];
  for (const w of value.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    if (STOP.has(w)) continue;
    out.push(w.length > 3 && w.endsWith('s') && !w.endsWith('ss') ? w.slice(0, -1) : w);
  }
  return out;
}

/** The text of an agent relevance is computed over: name, description, and its skills' words. */
export function documentOf(p: { name: string; description: string | null; skills: readonly AgentSkill[] }): string {
  return [p.name, p.description ?? '', ...p.skills.flatMap((s) => [s.name, s.description ?? '', s.tags.join(' '), s.examples.join(' ')])].join(' ');
}

/** The skill keys an agent covers: its skills' ids and tags, lower-case. */
export function skillKeysOf(skills: readonly AgentSkill[]): Set<string> {
  const keys = new Set<string>();
  for (const s of skills) {
    keys.add(s.id.toLowerCase());
    for (const t of s.tags) keys.add(t.toLowerCase());
  }
  return keys;
}
