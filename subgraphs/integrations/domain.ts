// The rules of integrations: the event catalog, what a valid endpoint, trigger and inbound
// integration are, filters and templates (JSONata), the retry schedule, signing secrets, and
// which addresses a webhook may reach. No SQL here (store.ts), no GraphQL (resolvers.ts), no
// HTTP (delivery.ts, inbound.ts).
import { randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import jsonata from 'jsonata';
import { badInput } from '../../runtime/errors.ts';
import type { DomainEvent } from '../../runtime/events.ts';
import { httpUrl, intInRange, optionalText, text } from '../../runtime/validate.ts';

// --- The event catalog -----------------------------------------------------------------------

export interface CatalogEntry {
  name: string;
  source: string;
  description: string;
}

// The integrations subgraph's own events.
export const WEBHOOK_DELIVERY_UPDATED = 'WebhookDeliveryUpdated';
export const WEBHOOK_ENDPOINT_DISABLED = 'WebhookEndpointDisabled';
export const WEBHOOK_TEST = 'WebhookTest';
export const INBOUND_EVENT_TYPE = { GITHUB: 'GitHubWebhookReceived', GITLAB: 'GitLabWebhookReceived', STANDARD_WEBHOOKS: 'StandardWebhookReceived' } as const;

/**
 * Every event endpoints and triggers may ask for, by the subgraph that publishes it (its outbox
 * channel). Names are the outbox event types; `data` in a delivery is the event's payload. Only
 * subgraphs with an outbox are sources: their events are retained, so none is lost while
 * integrations is down.
 */
export const EVENT_CATALOG: readonly CatalogEntry[] = [
  { name: 'AgentRegistered', source: 'agents', description: 'An agent was registered: { agentId, name, status, skillTags... }.' },
  { name: 'AgentUpdated', source: 'agents', description: 'An agent’s name, description, skills or metadata changed.' },
  { name: 'AgentStatusChanged', source: 'agents', description: 'An agent changed lifecycle status: { agentId, from, to }.' },
  { name: 'AgentHeartbeat', source: 'agents', description: 'An agent sent a heartbeat: { agentId, at }.' },
  { name: 'TaskStateChanged', source: 'orchestration', description: 'A task changed state: { taskId, from, to, agentId, workflowRunId }.' },
  { name: 'TaskProgressReported', source: 'orchestration', description: 'An agent reported progress: { taskId, agentId, percent, message }.' },
  { name: 'WorkflowRunStatusChanged', source: 'orchestration', description: 'A workflow run changed status: { runId, from, to }.' },
  { name: 'MemoryRemembered', source: 'memory', description: 'A memory was stored: { memoryId, namespace, version }.' },
  { name: 'MemoryUpdated', source: 'memory', description: 'A memory was changed: { memoryId, namespace, version }.' },
  {
    name: 'ApiKeyCreated',
    source: 'governance',
    description: 'An API key or agent credential was issued: { keyId, name, scopes, prefix, createdBy, agentId } (never the secret).',
  },
  { name: 'ApiKeyRevoked', source: 'governance', description: 'An API key or agent credential was revoked: { keyId, revokedBy, revokedAt }.' },
  { name: 'MemoryForgotten', source: 'memory', description: 'A memory was deleted: { memoryId, namespace, version }.' },
  {
    name: INBOUND_EVENT_TYPE.GITHUB,
    source: 'integrations',
    description: 'A verified GitHub webhook: { integrationId, provider, event (X-GitHub-Event), deliveryId, body }.',
  },
  {
    name: INBOUND_EVENT_TYPE.GITLAB,
    source: 'integrations',
    description: 'A verified GitLab webhook: { integrationId, provider, event (X-Gitlab-Event), deliveryId, body }.',
  },
  {
    name: INBOUND_EVENT_TYPE.STANDARD_WEBHOOKS,
    source: 'integrations',
    description: 'A verified Standard Webhooks message: { integrationId, provider, event (its type), deliveryId, body }.',
  },
  { name: WEBHOOK_ENDPOINT_DISABLED, source: 'integrations', description: 'An endpoint failed for too long and was disabled: { endpointId, url, reason }.' },
];

const CATALOG_NAMES = new Set(EVENT_CATALOG.map((e) => e.name));

/** The sources the feed reads, each a subgraph with an outbox (integrations reads its own log). */
export const EVENT_SOURCES = [...new Set(EVENT_CATALOG.map((e) => e.source))];

export function eventTypeName(value: string, field: string): string {
  if (!CATALOG_NAMES.has(value)) throw badInput(`${field}: "${value.slice(0, 100)}" is not in the event catalog (query integrationEventTypes)`, { field });
  return value;
}

// --- Filters and templates (JSONata) ---------------------------------------------------------

/** What a filter and a template see of an event. */
export interface EventView {
  id: string;
  type: string;
  tenantId: string;
  subjectId: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

export function viewOf(event: Pick<DomainEvent, 'id' | 'type' | 'tenantId' | 'subjectId' | 'occurredAt' | 'payload'>): EventView {
  return { id: event.id, type: event.type, tenantId: event.tenantId, subjectId: event.subjectId, occurredAt: event.occurredAt, data: event.payload };
}

const MAX_EXPRESSION = 2000;
const compiled = new Map<string, jsonata.Expression>();

/** Checks a JSONata expression on save: BAD_USER_INPUT naming the field and JSONata's message. */
export function expression(value: string, field: string): string {
  const v = text(value, field, { min: 1, max: MAX_EXPRESSION });
  try {
    compile(v);
  } catch (err) {
    throw badInput(`${field} is not a valid JSONata expression: ${(err as Error).message}`, { field });
  }
  return v;
}

function compile(source: string): jsonata.Expression {
  let e = compiled.get(source);
  if (!e) {
    e = jsonata(source);
    if (compiled.size > 5000) compiled.clear();
    compiled.set(source, e);
  }
  return e;
}

/** A filter holds when its value is truthy; one that fails to evaluate does not hold. */
export async function matches(filter: string | null, view: EventView): Promise<boolean> {
  if (filter === null) return true;
  try {
    return Boolean(await compile(filter).evaluate(view));
  } catch {
    return false;
  }
}

const PLACEHOLDER = /^\{\{([\s\S]+)\}\}$/;
const INLINE = /\{\{([\s\S]+?)\}\}/g;

/** Checks every "{{ expr }}" of a template. */
export function checkTemplate(value: unknown, field: string): void {
  walk(value, (s, path) => {
    for (const m of s.matchAll(INLINE)) expression(m[1] as string, `${field}${path}`);
  });
}

function walk(value: unknown, visit: (s: string, path: string) => void, path = ''): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) walk(v, visit, `${path}[${i}]`);
  } else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, visit, `${path}.${k}`);
}

/**
 * Fills a template: a string that is one "{{ expr }}" becomes the expression's value (any JSON);
 * "{{ expr }}" inside a longer string is replaced by the value as text.
 */
export async function fill(template: unknown, view: EventView): Promise<unknown> {
  if (typeof template === 'string') {
    const whole = PLACEHOLDER.exec(template);
    if (whole) return (await compile((whole[1] as string).trim()).evaluate(view)) ?? null;
    let out = '';
    let last = 0;
    for (const m of template.matchAll(INLINE)) {
      const v = await compile((m[1] as string).trim()).evaluate(view);
      out += template.slice(last, m.index) + (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
      last = (m.index ?? 0) + m[0].length;
    }
    return out + template.slice(last);
  }
  if (Array.isArray(template)) return Promise.all(template.map((t) => fill(t, view)));
  if (template && typeof template === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(template)) out[k] = await fill(v, view);
    return out;
  }
  return template;
}

// --- Endpoints -------------------------------------------------------------------------------

export interface EndpointDraft {
  url: string;
  description: string | null;
  eventTypes: string[];
  filter: string | null;
  enabled: boolean;
  rateLimitPerSecond: number | null;
}

export function normaliseEndpoint(input: {
  url: string;
  description?: string | null;
  eventTypes: readonly string[];
  filter?: string | null;
  enabled?: boolean | null;
  rateLimitPerSecond?: number | null;
}): EndpointDraft {
  return {
    url: webhookUrl(input.url, 'input.url'),
    description: optionalText(input.description, 'input.description', 500),
    eventTypes: eventTypes(input.eventTypes, 'input.eventTypes'),
    filter: input.filter == null ? null : expression(input.filter, 'input.filter'),
    enabled: input.enabled ?? true,
    rateLimitPerSecond: input.rateLimitPerSecond == null ? null : intInRange(input.rateLimitPerSecond, 'input.rateLimitPerSecond', 1, 10_000),
  };
}

export function eventTypes(values: readonly string[], field: string): string[] {
  if (values.length < 1 || values.length > 50) throw badInput(`${field} must name 1 to 50 event types`, { field });
  return [...new Set(values.map((v, i) => eventTypeName(v, `${field}[${i}]`)))];
}

export function webhookUrl(value: string, field: string): string {
  const url = httpUrl(value.trim(), field);
  const parsed = new URL(url);
  if (parsed.username || parsed.password) throw badInput(`${field} must not carry credentials`, { field });
  return url;
}

// --- Secrets ---------------------------------------------------------------------------------

/** A Standard Webhooks secret: whsec_ and 32 random bytes in base64. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export const secretPrefix = (secret: string) => `${secret.slice(0, 12)}…`;

export function overlapSeconds(value: number | null | undefined): number {
  return value == null ? 86_400 : intInRange(value, 'overlapSeconds', 0, 604_800);
}

// --- Retries ---------------------------------------------------------------------------------

/** The default retry schedule (after the first attempt): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const DEFAULT_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
/** A Retry-After longer than this is capped (an endpoint cannot park a delivery for ever). */
export const MAX_RETRY_AFTER_MS = 86_400_000;

/**
 * When the attempt after `attempts` failed ones happens, or null when the schedule ran out
 * (dead letter). ±20 % jitter spreads the retries of many deliveries that failed together; a
 * Retry-After the endpoint sent is honoured when it asks for longer.
 */
export function nextAttemptDelay(
  schedule: readonly number[],
  attempts: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number | null {
  const base = schedule[attempts - 1];
  if (base === undefined) return null;
  const jittered = Math.round(base * (0.8 + 0.4 * random()));
  return retryAfterMs === null ? jittered : Math.max(jittered, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
}

/** Retry-After in seconds or as an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

// --- Which addresses a webhook may reach -----------------------------------------------------

const refused = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const)
  refused.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  refused.addSubnet(net, bits, 'ipv6');

/** Parses "127.0.0.0/8,::1/128" into a BlockList of networks a webhook may reach though private. */
export function allowedNetworks(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const family = isIP(net ?? '');
    if (!net || family === 0) throw new Error(`"${cidr}" is not an address or CIDR network`);
    list.addSubnet(net, Number(bits ?? (family === 4 ? 32 : 128)), family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Why a resolved address is refused (private, loopback, link-local...), or null when it may be reached. */
export function addressRefusal(address: string, allowed: BlockList): string | null {
  const family = isIP(address);
  if (family === 0) return `"${address}" is not an IP address`;
  // An IPv4-mapped IPv6 address is judged as the IPv4 address it is.
  const mapped = family === 6 && /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const [addr, type] = mapped ? [mapped[1] as string, 'ipv4' as const] : [address, family === 4 ? ('ipv4' as const) : ('ipv6' as const)];
  if (!refused.check(addr, type) || allowed.check(addr, type)) return null;
  return `address ${address} is private, loopback or link-local (INTEGRATIONS_ALLOWED_NETWORKS allows such networks)`;
}

// --- Inbound ---------------------------------------------------------------------------------

export type InboundProvider = keyof typeof INBOUND_EVENT_TYPE;

export function inboundName(value: string): string {
  return text(value, 'input.name', { min: 1, max: 200 });
}

export const HOOK_PATH_SEGMENT: Record<InboundProvider, string> = { GITHUB: 'github', GITLAB: 'gitlab', STANDARD_WEBHOOKS: 'standard' };

export function newInboundSecret(provider: InboundProvider): string {
  return provider === 'STANDARD_WEBHOOKS' ? newSigningSecret() : randomBytes(32).toString('hex');
}

// --- Triggers --------------------------------------------------------------------------------

export type TriggerActionKind = 'SUBMIT_TASK' | 'START_WORKFLOW_RUN' | 'SLACK_POST' | 'DELIVER_TO_ENDPOINT';

export interface TriggerDraft {
  name: string;
  eventType: string;
  filter: string | null;
  action: TriggerActionKind;
  actionConfig: Record<string, unknown>;
  enabled: boolean;
}

const ACTION_FIELDS: Record<TriggerActionKind, { required: string[]; optional: string[] }> = {
  SUBMIT_TASK: { required: ['title'], optional: ['description', 'input', 'requiredSkillTags', 'priority'] },
  START_WORKFLOW_RUN: { required: ['definitionId'], optional: ['input'] },
  SLACK_POST: { required: ['webhookUrl', 'text'], optional: ['blocks'] },
  DELIVER_TO_ENDPOINT: { required: ['endpointId'], optional: [] },
};

export function normaliseTrigger(input: {
  name: string;
  eventType: string;
  filter?: string | null;
  action: { kind: TriggerActionKind; config: unknown };
  enabled?: boolean | null;
}): TriggerDraft {
  const config = input.action.config;
  if (!config || typeof config !== 'object' || Array.isArray(config))
    throw badInput('input.action.config must be a JSON object', { field: 'input.action.config' });
  const fields = ACTION_FIELDS[input.action.kind];
  const record = config as Record<string, unknown>;
  for (const k of fields.required)
    if (record[k] === undefined || record[k] === null)
      throw badInput(`input.action.config.${k} is required for ${input.action.kind}`, { field: `input.action.config.${k}` });
  for (const k of Object.keys(record))
    if (![...fields.required, ...fields.optional].includes(k))
      throw badInput(`input.action.config.${k} is not a setting of ${input.action.kind}`, { field: `input.action.config.${k}` });
  if (Buffer.byteLength(JSON.stringify(record)) > 32 * 1024)
    throw badInput('input.action.config must be at most 32 KiB of JSON', { field: 'input.action.config' });
  if (input.action.kind === 'SLACK_POST') webhookUrl(String(record.webhookUrl), 'input.action.config.webhookUrl');
  if (input.action.kind === 'DELIVER_TO_ENDPOINT' && typeof record.endpointId !== 'string')
    throw badInput('input.action.config.endpointId must be an ID', { field: 'input.action.config.endpointId' });
  checkTemplate(record, 'input.action.config');
  return {
    name: text(input.name, 'input.name', { min: 1, max: 200 }),
    eventType: eventTypeName(input.eventType, 'input.eventType'),
    filter: input.filter == null ? null : expression(input.filter, 'input.filter'),
    action: input.action.kind,
    actionConfig: record,
    enabled: input.enabled ?? true,
  };
}
