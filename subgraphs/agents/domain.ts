// The agents domain without I/O: the lifecycle state machine, liveness, and the rules that turn
// what a client sends (GraphQL input or an A2A Agent Card) into a normalised registration.
// Functions that depend on time take `now`, so tests control the clock instead of sleeping.
import { agentMismatch, badInput, conflict, domainError } from '../../runtime/errors.ts';
import { httpUrl, intInRange, jsonValue, optionalText, text } from '../../runtime/validate.ts';

export const AGENT_STATUSES = ['REGISTERED', 'ACTIVE', 'PAUSED', 'RETIRED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];
export type AgentHealth = 'HEALTHY' | 'STALE' | 'OFFLINE';

// ---------------------------------------------------------------------------------------------
// Events (published after commit; other subgraphs subscribe by these names)

export const AgentRegistered = 'AgentRegistered';
export const AgentUpdated = 'AgentUpdated';
export const AgentStatusChanged = 'AgentStatusChanged';
export const AgentHeartbeat = 'AgentHeartbeat';

// Type aliases, not interfaces: DomainEvent payloads must be assignable to Record<string, unknown>.
export type AgentRegisteredPayload = {
  agentId: string;
  name: string;
  status: AgentStatus;
  /** Every tag of every skill, so matchers need not fetch the agent. */
  skillTags: string[];
};
export type AgentUpdatedPayload = {
  agentId: string;
  version: number;
  /** Names of the UpdateAgentInput fields that were given. */
  fields: string[];
  skillTags: string[];
};
export type AgentStatusChangedPayload = {
  agentId: string;
  from: AgentStatus;
  to: AgentStatus;
};
export type AgentHeartbeatPayload = {
  agentId: string;
  at: string;
};

// ---------------------------------------------------------------------------------------------
// Lifecycle

export type StatusAction = 'activate' | 'pause' | 'resume' | 'retire';

// Legality depends on the action, not only on the two statuses: PAUSED → ACTIVE is `resume`,
// never `activate`, so a client that sends the wrong verb learns it instead of succeeding by luck.
const ACTIONS: Record<StatusAction, { from: readonly AgentStatus[]; to: AgentStatus }> = {
  activate: { from: ['REGISTERED'], to: 'ACTIVE' },
  pause: { from: ['ACTIVE'], to: 'PAUSED' },
  resume: { from: ['PAUSED'], to: 'ACTIVE' },
  retire: { from: ['REGISTERED', 'ACTIVE', 'PAUSED'], to: 'RETIRED' },
};

/** The status `action` leads to from `from`; a CONFLICT naming both statuses when it is not allowed. */
export function nextStatus(from: AgentStatus, action: StatusAction): AgentStatus {
  const rule = ACTIONS[action];
  if (!rule.from.includes(from)) {
    throw conflict(`Cannot ${action} an agent in status ${from}: ${from} → ${rule.to} is not allowed`, {
      from,
      to: rule.to,
      action,
    });
  }
  return rule.to;
}

/** A retired agent is gone for good: recording that it is alive would contradict that. */
export function assertCanHeartbeat(status: AgentStatus): void {
  if (status === 'RETIRED') throw conflict('A RETIRED agent cannot record heartbeats', { status });
}

// ---------------------------------------------------------------------------------------------
// Agents acting on the registry: a caller that is an agent (an agent credential, or a token with
// the agent claim) keeps itself alive and describes itself, and may take itself out of work, but
// changes no other agent and registers none; activation stays an operator's decision.

export type AgentAction = 'register' | 'update' | 'heartbeat' | StatusAction;

/** What an agent may do to its own record. */
export const SELF_ACTIONS: readonly AgentAction[] = ['update', 'heartbeat', 'pause', 'resume', 'retire'];

/**
 * Refuses what an agent caller (`callerAgentId` set) may not do: another agent's record or a
 * registration is AGENT_MISMATCH, activating itself FORBIDDEN. Callers acting for no agent pass.
 */
export function assertAgentMayAct(callerAgentId: string | null | undefined, action: AgentAction, targetId: string | null): void {
  if (!callerAgentId) return;
  if (action === 'register') {
    throw agentMismatch(`This credential acts as agent "${callerAgentId}" and cannot register other agents`, { agentId: callerAgentId, action });
  }
  if (targetId !== callerAgentId) {
    throw agentMismatch(`This credential acts as agent "${callerAgentId}" and cannot ${action} agent "${targetId}"`, { agentId: callerAgentId, action });
  }
  if (!SELF_ACTIONS.includes(action)) {
    throw domainError('FORBIDDEN', `An agent cannot ${action} itself; an operator does`, { agentId: callerAgentId, action });
  }
}

// ---------------------------------------------------------------------------------------------
// Liveness

export const HEALTHY_INTERVALS = 2;
export const STALE_INTERVALS = 5;

/** HEALTHY within 2 intervals of the last heartbeat (inclusive), STALE within 5, else OFFLINE. */
export function deriveHealth(lastHeartbeatAt: string | null, heartbeatIntervalSeconds: number, now: Date): AgentHealth {
  if (lastHeartbeatAt === null) return 'OFFLINE';
  const last = Date.parse(lastHeartbeatAt);
  if (Number.isNaN(last)) return 'OFFLINE';
  const elapsedMs = now.getTime() - last;
  const intervalMs = heartbeatIntervalSeconds * 1000;
  if (elapsedMs <= HEALTHY_INTERVALS * intervalMs) return 'HEALTHY';
  if (elapsedMs <= STALE_INTERVALS * intervalMs) return 'STALE';
  return 'OFFLINE';
}

// ---------------------------------------------------------------------------------------------
// The normalised agent fields

export interface AgentSkill {
  id: string;
  name: string;
  description: string | null;
  tags: string[];
  examples: string[];
  inputModes: string[];
  outputModes: string[];
}
export interface AgentProvider {
  organization: string;
  url: string | null;
}
export interface AgentCapabilities {
  streaming: boolean;
  pushNotifications: boolean;
}
export interface Label {
  key: string;
  value: string;
}

/** A validated registration: what the store inserts. */
export interface AgentDraft {
  name: string;
  description: string | null;
  agentVersion: string;
  endpointUrl: string | null;
  provider: AgentProvider | null;
  capabilities: AgentCapabilities;
  skills: AgentSkill[];
  labels: Label[];
  defaultInputModes: string[];
  defaultOutputModes: string[];
  heartbeatIntervalSeconds: number;
  /** The A2A Agent Card as given, when the agent registered from one. */
  card: unknown;
}

/** A validated update: only the fields to change are present. */
export type AgentPatch = Partial<Omit<AgentDraft, 'card'>>;

export const LIMITS = {
  name: 200,
  description: 4000,
  agentVersion: 64,
  skills: 100,
  skillId: 128,
  skillName: 200,
  tagsPerSkill: 32,
  tag: 64,
  examplesPerSkill: 20,
  example: 1000,
  modes: 20,
  mode: 128,
  labels: 64,
  labelKey: 128,
  labelValue: 256,
  organization: 200,
  filterText: 200,
  heartbeatMin: 5,
  heartbeatMax: 86_400,
  cardBytes: 256 * 1024,
} as const;

export const DEFAULT_AGENT_VERSION = '0.1.0';
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30;

// Inputs mirror the GraphQL input types (absent = undefined, explicit null = null).
type Opt<T> = T | null | undefined;

export interface SkillInput {
  id: string;
  name: string;
  description?: Opt<string>;
  tags?: Opt<readonly string[]>;
  examples?: Opt<readonly string[]>;
  inputModes?: Opt<readonly string[]>;
  outputModes?: Opt<readonly string[]>;
}
export interface ProviderInput {
  organization: string;
  url?: Opt<string>;
}
export interface CapabilitiesInput {
  streaming?: Opt<boolean>;
  pushNotifications?: Opt<boolean>;
}
export interface LabelInput {
  key: string;
  value: string;
}
export interface RegisterInput {
  name: string;
  description?: Opt<string>;
  agentVersion?: Opt<string>;
  endpointUrl?: Opt<string>;
  provider?: Opt<ProviderInput>;
  capabilities?: Opt<CapabilitiesInput>;
  skills?: Opt<readonly SkillInput[]>;
  labels?: Opt<readonly LabelInput[]>;
  defaultInputModes?: Opt<readonly string[]>;
  defaultOutputModes?: Opt<readonly string[]>;
  heartbeatIntervalSeconds?: Opt<number>;
}
export type UpdateInput = { [K in keyof RegisterInput]?: Opt<RegisterInput[K]> };

// ---------------------------------------------------------------------------------------------
// Field rules, each naming the field it reports on (callers pass "input.name", "card.version"...)

export function normaliseName(value: string, field: string): string {
  return text(value, field, { min: 1, max: LIMITS.name });
}

export function normaliseDescription(value: Opt<string>, field: string): string | null {
  return optionalText(value, field, LIMITS.description);
}

export function normaliseAgentVersion(value: Opt<string>, field: string): string {
  if (value === null || value === undefined) return DEFAULT_AGENT_VERSION;
  return text(value, field, { min: 1, max: LIMITS.agentVersion });
}

export function normaliseEndpointUrl(value: Opt<string>, field: string): string | null {
  if (value === null || value === undefined) return null;
  return httpUrl(value.trim(), field);
}

export function normaliseProvider(value: Opt<ProviderInput>, field: string): AgentProvider | null {
  if (value === null || value === undefined) return null;
  return {
    organization: text(value.organization, `${field}.organization`, { min: 1, max: LIMITS.organization }),
    url: normaliseEndpointUrl(value.url, `${field}.url`),
  };
}

export function normaliseCapabilities(value: Opt<CapabilitiesInput>): AgentCapabilities {
  return { streaming: value?.streaming ?? false, pushNotifications: value?.pushNotifications ?? false };
}

/** Trims, rejects empty or oversized items, and drops repeats (they would mean nothing twice). */
function distinctList(values: Opt<readonly string[]>, field: string, maxItems: number, maxLength: number): string[] {
  if (values === null || values === undefined) return [];
  if (values.length > maxItems) throw badInput(`${field} must have at most ${maxItems} items, got ${values.length}`, { field });
  const out: string[] = [];
  values.forEach((v, i) => {
    const item = text(v, `${field}[${i}]`, { min: 1, max: maxLength });
    if (!out.includes(item)) out.push(item);
  });
  return out;
}

export function normaliseModes(values: Opt<readonly string[]>, field: string): string[] {
  return distinctList(values, field, LIMITS.modes, LIMITS.mode);
}

export function normaliseSkills(values: Opt<readonly SkillInput[]>, field: string): AgentSkill[] {
  if (values === null || values === undefined) return [];
  if (values.length > LIMITS.skills) throw badInput(`${field} must have at most ${LIMITS.skills} skills, got ${values.length}`, { field });
  const seen = new Set<string>();
  return values.map((skill, i) => {
    const at = `${field}[${i}]`;
    const id = text(skill.id, `${at}.id`, { min: 1, max: LIMITS.skillId });
    if (seen.has(id)) throw badInput(`${at}.id "${id}" is used by another skill of this agent`, { field: `${at}.id` });
    seen.add(id);
    return {
      id,
      name: text(skill.name, `${at}.name`, { min: 1, max: LIMITS.skillName }),
      description: optionalText(skill.description, `${at}.description`, LIMITS.description),
      tags: distinctList(skill.tags, `${at}.tags`, LIMITS.tagsPerSkill, LIMITS.tag),
      examples: distinctList(skill.examples, `${at}.examples`, LIMITS.examplesPerSkill, LIMITS.example),
      inputModes: normaliseModes(skill.inputModes, `${at}.inputModes`),
      outputModes: normaliseModes(skill.outputModes, `${at}.outputModes`),
    };
  });
}

export function normaliseLabels(values: Opt<readonly LabelInput[]>, field: string): Label[] {
  if (values === null || values === undefined) return [];
  if (values.length > LIMITS.labels) throw badInput(`${field} must have at most ${LIMITS.labels} labels, got ${values.length}`, { field });
  const seen = new Set<string>();
  return values.map((label, i) => {
    const key = text(label.key, `${field}[${i}].key`, { min: 1, max: LIMITS.labelKey });
    if (seen.has(key)) throw badInput(`${field}[${i}].key "${key}" is given twice`, { field: `${field}[${i}].key` });
    seen.add(key);
    return { key, value: text(label.value, `${field}[${i}].value`, { max: LIMITS.labelValue }) };
  });
}

export function normaliseHeartbeatInterval(value: Opt<number>, field: string): number {
  if (value === null || value === undefined) return DEFAULT_HEARTBEAT_INTERVAL_SECONDS;
  return intInRange(value, field, LIMITS.heartbeatMin, LIMITS.heartbeatMax);
}

/** Every distinct tag over all skills, in first-seen order. */
export function skillTagsOf(skills: readonly AgentSkill[]): string[] {
  return [...new Set(skills.flatMap((s) => s.tags))];
}

// ---------------------------------------------------------------------------------------------
// registerAgent / updateAgent

export function normaliseRegistration(input: RegisterInput, field = 'input'): AgentDraft {
  return {
    name: normaliseName(input.name, `${field}.name`),
    description: normaliseDescription(input.description, `${field}.description`),
    agentVersion: normaliseAgentVersion(input.agentVersion, `${field}.agentVersion`),
    endpointUrl: normaliseEndpointUrl(input.endpointUrl, `${field}.endpointUrl`),
    provider: normaliseProvider(input.provider, `${field}.provider`),
    capabilities: normaliseCapabilities(input.capabilities),
    skills: normaliseSkills(input.skills, `${field}.skills`),
    labels: normaliseLabels(input.labels, `${field}.labels`),
    defaultInputModes: normaliseModes(input.defaultInputModes, `${field}.defaultInputModes`),
    defaultOutputModes: normaliseModes(input.defaultOutputModes, `${field}.defaultOutputModes`),
    heartbeatIntervalSeconds: normaliseHeartbeatInterval(input.heartbeatIntervalSeconds, `${field}.heartbeatIntervalSeconds`),
    card: null,
  };
}

// Fields that may be cleared with an explicit null; for the others null has no meaning, and
// silently ignoring it would hide a client bug.
const CLEARABLE = new Set<keyof UpdateInput>(['description', 'endpointUrl', 'provider']);

/**
 * Omitted fields stay as they are; null clears description, endpointUrl and provider. An input
 * that changes nothing is rejected: it would bump the version for no change.
 */
export function normaliseUpdate(input: UpdateInput, field = 'input'): AgentPatch {
  const given = (Object.keys(input) as (keyof UpdateInput)[]).filter((k) => input[k] !== undefined);
  if (given.length === 0) throw badInput(`${field} must contain at least one field to change`, { field });
  for (const k of given) {
    if (input[k] === null && !CLEARABLE.has(k)) throw badInput(`${field}.${k} cannot be null; omit it to keep the current value`, { field: `${field}.${k}` });
  }
  const patch: AgentPatch = {};
  const f = (k: string) => `${field}.${k}`;
  if (input.name != null) patch.name = normaliseName(input.name, f('name'));
  if (input.description !== undefined) patch.description = normaliseDescription(input.description, f('description'));
  if (input.agentVersion != null) patch.agentVersion = normaliseAgentVersion(input.agentVersion, f('agentVersion'));
  if (input.endpointUrl !== undefined) patch.endpointUrl = normaliseEndpointUrl(input.endpointUrl, f('endpointUrl'));
  if (input.provider !== undefined) patch.provider = normaliseProvider(input.provider, f('provider'));
  if (input.capabilities != null) patch.capabilities = normaliseCapabilities(input.capabilities);
  if (input.skills != null) patch.skills = normaliseSkills(input.skills, f('skills'));
  if (input.labels != null) patch.labels = normaliseLabels(input.labels, f('labels'));
  if (input.defaultInputModes != null) patch.defaultInputModes = normaliseModes(input.defaultInputModes, f('defaultInputModes'));
  if (input.defaultOutputModes != null) patch.defaultOutputModes = normaliseModes(input.defaultOutputModes, f('defaultOutputModes'));
  if (input.heartbeatIntervalSeconds != null) {
    patch.heartbeatIntervalSeconds = normaliseHeartbeatInterval(input.heartbeatIntervalSeconds, f('heartbeatIntervalSeconds'));
  }
  return patch;
}

// ---------------------------------------------------------------------------------------------
// The agents list filter

export interface AgentFilterInput {
  status?: Opt<AgentStatus>;
  skillTag?: Opt<string>;
  label?: Opt<{ key: string; value?: Opt<string> }>;
  text?: Opt<string>;
}

export interface AgentListFilter {
  status?: AgentStatus;
  skillTag?: string;
  label?: { key: string; value?: string };
  /** Lower-cased; matched as a substring of the lower-cased name and description. */
  text?: string;
}

export function normaliseFilter(filter: Opt<AgentFilterInput>, field = 'filter'): AgentListFilter {
  const out: AgentListFilter = {};
  if (!filter) return out;
  if (filter.status != null) out.status = filter.status;
  if (filter.skillTag != null) out.skillTag = text(filter.skillTag, `${field}.skillTag`, { min: 1, max: LIMITS.tag });
  if (filter.label != null) {
    const key = text(filter.label.key, `${field}.label.key`, { min: 1, max: LIMITS.labelKey });
    out.label = filter.label.value == null ? { key } : { key, value: text(filter.label.value, `${field}.label.value`, { max: LIMITS.labelValue }) };
  }
  if (filter.text != null) {
    const t = text(filter.text, `${field}.text`, { max: LIMITS.filterText });
    if (t !== '') out.text = searchText(t);
  }
  return out;
}

/**
 * The case-folded form the text filter compares. Folding happens here rather than with SQL
 * lower(), which on SQLite folds ASCII only: "ÉCOLE" must find "école" on both databases.
 */
export function searchText(...parts: (string | null)[]): string {
  return parts
    .filter((p): p is string => p !== null)
    .join('\n')
    .toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// A2A Agent Card → registration

/**
 * Reads an A2A Agent Card: v1.0 (`supportedInterfaces[]`, the first being preferred) or v0.3
 * (top-level `url` with `protocolVersion` and `preferredTransport`). Fields the card spec requires
 * and this registry uses (name, description, version, the endpoint, skills with id, name,
 * description and tags) must be present; optional ones are type-checked when given. Every error
 * names the card field, e.g. `card.skills[2].tags`.
 */
export function registrationFromCard(card: unknown, extras: { labels?: Opt<readonly LabelInput[]>; heartbeatIntervalSeconds?: Opt<number> } = {}): AgentDraft {
  const c = asObject(card, 'card');
  jsonValue(card, 'card', LIMITS.cardBytes);

  const name = requiredString(c, 'name', 'card');
  const description = requiredString(c, 'description', 'card');
  const version = requiredString(c, 'version', 'card');
  const endpoint = cardEndpoint(c);
  const provider = optionalObject(c, 'provider', 'card');
  const capabilities = optionalObject(c, 'capabilities', 'card');
  const skills = requiredArray(c, 'skills', 'card');

  return {
    name: normaliseName(name, 'card.name'),
    description: normaliseDescription(description, 'card.description'),
    agentVersion: normaliseAgentVersion(version, 'card.version'),
    endpointUrl: normaliseEndpointUrl(endpoint.url, endpoint.field),
    provider: provider
      ? normaliseProvider(
          { organization: requiredString(provider, 'organization', 'card.provider'), url: optionalString(provider, 'url', 'card.provider') },
          'card.provider',
        )
      : null,
    capabilities: normaliseCapabilities(
      capabilities
        ? {
            streaming: optionalBoolean(capabilities, 'streaming', 'card.capabilities'),
            pushNotifications: optionalBoolean(capabilities, 'pushNotifications', 'card.capabilities'),
          }
        : null,
    ),
    skills: normaliseSkills(
      skills.map((s, i) => cardSkill(s, `card.skills[${i}]`)),
      'card.skills',
    ),
    labels: normaliseLabels(extras.labels, 'labels'),
    defaultInputModes: normaliseModes(optionalStringArray(c, 'defaultInputModes', 'card'), 'card.defaultInputModes'),
    defaultOutputModes: normaliseModes(optionalStringArray(c, 'defaultOutputModes', 'card'), 'card.defaultOutputModes'),
    heartbeatIntervalSeconds: normaliseHeartbeatInterval(extras.heartbeatIntervalSeconds, 'heartbeatIntervalSeconds'),
    card,
  };
}

type JsonObject = Record<string, unknown>;

function cardEndpoint(c: JsonObject): { url: string; field: string } {
  if (c.supportedInterfaces !== undefined) {
    const interfaces = requiredArray(c, 'supportedInterfaces', 'card');
    if (interfaces.length === 0) {
      throw badInput('card.supportedInterfaces must list at least one interface', { field: 'card.supportedInterfaces' });
    }
    const parsed = interfaces.map((entry, i) => {
      const at = `card.supportedInterfaces[${i}]`;
      const o = asObject(entry, at);
      optionalString(o, 'protocolBinding', at);
      optionalString(o, 'protocolVersion', at);
      return { url: requiredString(o, 'url', at), field: `${at}.url` };
    });
    // The spec orders interfaces by preference: the first one is where to reach the agent.
    return parsed[0] as { url: string; field: string };
  }
  if (c.url !== undefined) {
    optionalString(c, 'protocolVersion', 'card');
    optionalString(c, 'preferredTransport', 'card');
    return { url: requiredString(c, 'url', 'card'), field: 'card.url' };
  }
  throw badInput('card.supportedInterfaces (A2A 1.0) or card.url (A2A 0.3) is required', { field: 'card.supportedInterfaces' });
}

function cardSkill(value: unknown, at: string): SkillInput {
  const s = asObject(value, at);
  return {
    id: requiredString(s, 'id', at),
    name: requiredString(s, 'name', at),
    description: requiredString(s, 'description', at),
    tags: requiredStringArray(s, 'tags', at),
    examples: optionalStringArray(s, 'examples', at),
    inputModes: optionalStringArray(s, 'inputModes', at),
    outputModes: optionalStringArray(s, 'outputModes', at),
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function asObject(value: unknown, field: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badInput(`${field} must be a JSON object, got ${describe(value)}`, { field });
  }
  return value as JsonObject;
}

function requiredString(o: JsonObject, key: string, at: string): string {
  const field = `${at}.${key}`;
  const v = o[key];
  if (v === undefined || v === null) throw badInput(`${field} is required`, { field });
  if (typeof v !== 'string') throw badInput(`${field} must be a string, got ${describe(v)}`, { field });
  return v;
}

function optionalString(o: JsonObject, key: string, at: string): string | null {
  if (o[key] === undefined || o[key] === null) return null;
  return requiredString(o, key, at);
}

function optionalBoolean(o: JsonObject, key: string, at: string): boolean | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') throw badInput(`${at}.${key} must be a boolean, got ${describe(v)}`, { field: `${at}.${key}` });
  return v;
}

function optionalObject(o: JsonObject, key: string, at: string): JsonObject | null {
  if (o[key] === undefined || o[key] === null) return null;
  return asObject(o[key], `${at}.${key}`);
}

function requiredArray(o: JsonObject, key: string, at: string): unknown[] {
  const field = `${at}.${key}`;
  const v = o[key];
  if (v === undefined || v === null) throw badInput(`${field} is required`, { field });
  if (!Array.isArray(v)) throw badInput(`${field} must be an array, got ${describe(v)}`, { field });
  return v;
}

function requiredStringArray(o: JsonObject, key: string, at: string): string[] {
  const field = `${at}.${key}`;
  return requiredArray(o, key, at).map((v, i) => {
    if (typeof v !== 'string') throw badInput(`${field}[${i}] must be a string, got ${describe(v)}`, { field: `${field}[${i}]` });
    return v;
  });
}

function optionalStringArray(o: JsonObject, key: string, at: string): string[] | null {
  if (o[key] === undefined || o[key] === null) return null;
  return requiredStringArray(o, key, at);
}
