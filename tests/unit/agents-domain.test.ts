import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  AGENT_STATUSES,
  DEFAULT_AGENT_VERSION,
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  assertAgentMayAct,
  assertCanHeartbeat,
  SELF_ACTIONS,
  deriveHealth,
  nextStatus,
  normaliseFilter,
  normaliseRegistration,
  normaliseUpdate,
  registrationFromCard,
  searchText,
  skillTagsOf,
  type AgentStatus,
  type StatusAction,
} from '../../subgraphs/agents/domain.ts';

/** Runs fn, expecting a GraphQLError; returns its code, message and extensions. */
function failure(fn: () => unknown): { code: unknown; message: string; extensions: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    const e = err as GraphQLError;
    return { code: e.extensions.code, message: e.message, extensions: e.extensions };
  }
  throw new Error('expected an error, none was thrown');
}

describe('agent lifecycle', () => {
  const legal: [AgentStatus, StatusAction, AgentStatus][] = [
    ['REGISTERED', 'activate', 'ACTIVE'],
    ['ACTIVE', 'pause', 'PAUSED'],
    ['PAUSED', 'resume', 'ACTIVE'],
    ['REGISTERED', 'retire', 'RETIRED'],
    ['ACTIVE', 'retire', 'RETIRED'],
    ['PAUSED', 'retire', 'RETIRED'],
  ];
  it.each(legal)('%s --%s--> %s', (from, action, to) => {
    expect(nextStatus(from, action)).toBe(to);
  });

  const actions: StatusAction[] = ['activate', 'pause', 'resume', 'retire'];
  const illegal = AGENT_STATUSES.flatMap((from) =>
    actions.filter((action) => !legal.some(([f, a]) => f === from && a === action)).map((action) => [from, action] as const),
  );

  it('has exactly the ten illegal combinations of status and action', () => {
    expect(illegal).toHaveLength(AGENT_STATUSES.length * actions.length - legal.length);
    expect(illegal).toHaveLength(10);
  });

  it.each(illegal)('%s --%s--> is a CONFLICT naming from and to', (from, action) => {
    const to = { activate: 'ACTIVE', pause: 'PAUSED', resume: 'ACTIVE', retire: 'RETIRED' }[action];
    const err = failure(() => nextStatus(from, action));
    expect(err.code).toBe('CONFLICT');
    expect(err.extensions).toMatchObject({ from, to, action });
    expect(err.message).toContain(from);
    expect(err.message).toContain(to);
  });

  it('lets every status but RETIRED record heartbeats', () => {
    for (const s of ['REGISTERED', 'ACTIVE', 'PAUSED'] as const) expect(() => assertCanHeartbeat(s)).not.toThrow();
    expect(failure(() => assertCanHeartbeat('RETIRED')).code).toBe('CONFLICT');
  });
});

describe('agent health', () => {
  const last = '2026-01-01T00:00:00.000Z';
  const at = (ms: number) => new Date(Date.parse(last) + ms);

  it('is OFFLINE when the agent never sent a heartbeat', () => {
    expect(deriveHealth(null, 30, at(0))).toBe('OFFLINE');
  });

  it('is HEALTHY up to and including two intervals', () => {
    expect(deriveHealth(last, 30, at(0))).toBe('HEALTHY');
    expect(deriveHealth(last, 30, at(60_000))).toBe('HEALTHY');
  });

  it('is STALE just after two intervals and up to five', () => {
    expect(deriveHealth(last, 30, at(60_001))).toBe('STALE');
    expect(deriveHealth(last, 30, at(150_000))).toBe('STALE');
  });

  it('is OFFLINE just after five intervals', () => {
    expect(deriveHealth(last, 30, at(150_001))).toBe('OFFLINE');
    expect(deriveHealth(last, 30, at(86_400_000))).toBe('OFFLINE');
  });

  it('scales with the interval', () => {
    expect(deriveHealth(last, 5, at(10_000))).toBe('HEALTHY');
    expect(deriveHealth(last, 5, at(10_001))).toBe('STALE');
    expect(deriveHealth(last, 3600, at(3 * 3600_000))).toBe('STALE');
  });

  it('treats a heartbeat slightly in the future (clock skew) as HEALTHY', () => {
    expect(deriveHealth(last, 30, at(-5_000))).toBe('HEALTHY');
  });
});

describe('registration input', () => {
  it('applies defaults and trims', () => {
    const d = normaliseRegistration({ name: '  Summariser  ' });
    expect(d).toEqual({
      name: 'Summariser',
      description: null,
      agentVersion: DEFAULT_AGENT_VERSION,
      endpointUrl: null,
      provider: null,
      capabilities: { streaming: false, pushNotifications: false },
      skills: [],
      labels: [],
      defaultInputModes: [],
      defaultOutputModes: [],
      heartbeatIntervalSeconds: DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
      card: null,
    });
  });

  it('keeps every field given', () => {
    const d = normaliseRegistration({
      name: 'Translator',
      description: 'Translates text',
      agentVersion: '2.1.0',
      endpointUrl: 'https://agents.example.com/translate',
      provider: { organization: 'Example', url: 'https://example.com' },
      capabilities: { streaming: true },
      skills: [{ id: 'tr', name: 'Translate', tags: ['translate', 'fr', 'translate'], examples: ['to French'] }],
      labels: [{ key: 'team', value: 'lang' }],
      defaultInputModes: ['text/plain'],
      defaultOutputModes: ['text/plain', 'application/json'],
      heartbeatIntervalSeconds: 60,
    });
    expect(d.provider).toEqual({ organization: 'Example', url: 'https://example.com' });
    expect(d.capabilities).toEqual({ streaming: true, pushNotifications: false });
    // A repeated tag means nothing twice.
    expect(d.skills[0]).toEqual({
      id: 'tr',
      name: 'Translate',
      description: null,
      tags: ['translate', 'fr'],
      examples: ['to French'],
      inputModes: [],
      outputModes: [],
    });
    expect(d.heartbeatIntervalSeconds).toBe(60);
    expect(skillTagsOf(d.skills)).toEqual(['translate', 'fr']);
  });

  const cases: [string, string, Record<string, unknown>][] = [
    ['an empty name', 'input.name', { name: '   ' }],
    ['a 201-character name', 'input.name', { name: 'x'.repeat(201) }],
    ['a 4001-character description', 'input.description', { name: 'a', description: 'd'.repeat(4001) }],
    ['a 65-character agentVersion', 'input.agentVersion', { name: 'a', agentVersion: '1'.repeat(65) }],
    ['an ftp endpointUrl', 'input.endpointUrl', { name: 'a', endpointUrl: 'ftp://example.com/x' }],
    ['a relative endpointUrl', 'input.endpointUrl', { name: 'a', endpointUrl: '/a2a' }],
    ['a provider without organization', 'input.provider.organization', { name: 'a', provider: { organization: '' } }],
    ['a provider with a bad url', 'input.provider.url', { name: 'a', provider: { organization: 'o', url: 'nope' } }],
    ['101 skills', 'input.skills', { name: 'a', skills: Array.from({ length: 101 }, (_, i) => ({ id: `s${i}`, name: 's' })) }],
    [
      'two skills with one id',
      'input.skills[1].id',
      {
        name: 'a',
        skills: [
          { id: 's', name: 'one' },
          { id: 's', name: 'two' },
        ],
      },
    ],
    ['an empty skill id', 'input.skills[0].id', { name: 'a', skills: [{ id: ' ', name: 'one' }] }],
    ['a 65-character tag', 'input.skills[0].tags[0]', { name: 'a', skills: [{ id: 's', name: 'n', tags: ['t'.repeat(65)] }] }],
    ['33 tags on a skill', 'input.skills[0].tags', { name: 'a', skills: [{ id: 's', name: 'n', tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }] }],
    ['an empty tag', 'input.skills[0].tags[1]', { name: 'a', skills: [{ id: 's', name: 'n', tags: ['ok', ''] }] }],
    ['65 labels', 'input.labels', { name: 'a', labels: Array.from({ length: 65 }, (_, i) => ({ key: `k${i}`, value: 'v' })) }],
    [
      'a repeated label key',
      'input.labels[1].key',
      {
        name: 'a',
        labels: [
          { key: 'k', value: '1' },
          { key: 'k', value: '2' },
        ],
      },
    ],
    ['a 129-character label key', 'input.labels[0].key', { name: 'a', labels: [{ key: 'k'.repeat(129), value: 'v' }] }],
    ['a 257-character label value', 'input.labels[0].value', { name: 'a', labels: [{ key: 'k', value: 'v'.repeat(257) }] }],
    ['21 input modes', 'input.defaultInputModes', { name: 'a', defaultInputModes: Array.from({ length: 21 }, (_, i) => `m/${i}`) }],
    ['a heartbeat interval of 4', 'input.heartbeatIntervalSeconds', { name: 'a', heartbeatIntervalSeconds: 4 }],
    ['a heartbeat interval of 86401', 'input.heartbeatIntervalSeconds', { name: 'a', heartbeatIntervalSeconds: 86_401 }],
    ['a fractional heartbeat interval', 'input.heartbeatIntervalSeconds', { name: 'a', heartbeatIntervalSeconds: 7.5 }],
  ];
  it.each(cases)('rejects %s as BAD_USER_INPUT naming %s', (_what, field, input) => {
    const err = failure(() => normaliseRegistration(input as { name: string }));
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.extensions.field).toBe(field);
  });

  it('accepts the bounds themselves', () => {
    const d = normaliseRegistration({
      name: 'x'.repeat(200),
      description: 'd'.repeat(4000),
      agentVersion: '1'.repeat(64),
      skills: Array.from({ length: 100 }, (_, i) => ({ id: `s${i}`, name: 's' })),
      heartbeatIntervalSeconds: 5,
    });
    expect(d.skills).toHaveLength(100);
    expect(normaliseRegistration({ name: 'a', heartbeatIntervalSeconds: 86_400 }).heartbeatIntervalSeconds).toBe(86_400);
  });
});

describe('update input', () => {
  it('keeps only the fields given; null clears the clearable ones', () => {
    expect(normaliseUpdate({ name: ' New ' })).toEqual({ name: 'New' });
    expect(normaliseUpdate({ description: null, endpointUrl: null, provider: null })).toEqual({
      description: null,
      endpointUrl: null,
      provider: null,
    });
    expect(normaliseUpdate({ skills: [], labels: [{ key: 'a', value: 'b' }] })).toEqual({ skills: [], labels: [{ key: 'a', value: 'b' }] });
  });

  it('rejects an update that changes nothing', () => {
    const err = failure(() => normaliseUpdate({}));
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.extensions.field).toBe('input');
  });

  it('rejects null for a field that cannot be cleared', () => {
    for (const k of ['name', 'agentVersion', 'skills', 'labels', 'capabilities', 'heartbeatIntervalSeconds'] as const) {
      const err = failure(() => normaliseUpdate({ [k]: null }));
      expect(err.code).toBe('BAD_USER_INPUT');
      expect(err.extensions.field).toBe(`input.${k}`);
    }
  });

  it('applies the registration rules to the fields given', () => {
    expect(failure(() => normaliseUpdate({ name: '' })).extensions.field).toBe('input.name');
    expect(failure(() => normaliseUpdate({ heartbeatIntervalSeconds: 1 })).extensions.field).toBe('input.heartbeatIntervalSeconds');
  });
});

describe('list filter', () => {
  it('normalises each condition', () => {
    expect(normaliseFilter(null)).toEqual({});
    expect(normaliseFilter({ status: 'ACTIVE', skillTag: ' sql ', label: { key: 'team' }, text: ' Éco ' })).toEqual({
      status: 'ACTIVE',
      skillTag: 'sql',
      label: { key: 'team' },
      text: 'éco',
    });
    expect(normaliseFilter({ label: { key: 'team', value: '' } })).toEqual({ label: { key: 'team', value: '' } });
    expect(normaliseFilter({ text: '   ' })).toEqual({});
  });

  it('rejects oversized conditions', () => {
    expect(failure(() => normaliseFilter({ text: 'x'.repeat(201) })).extensions.field).toBe('filter.text');
    expect(failure(() => normaliseFilter({ skillTag: '' })).extensions.field).toBe('filter.skillTag');
  });

  it('folds case beyond ASCII for the text search', () => {
    expect(searchText('ÉCOLE', null)).toBe('école');
    expect(searchText('Name', 'Description')).toBe('name\ndescription');
  });
});

describe('A2A Agent Card', () => {
  const v03 = {
    protocolVersion: '0.3.0',
    name: 'GeoSpatial Route Planner Agent',
    description: 'Provides advanced route planning, traffic analysis, and custom map generation services.',
    url: 'https://georoute-agent.example.com/a2a/v1',
    preferredTransport: 'JSONRPC',
    additionalInterfaces: [
      { url: 'https://georoute-agent.example.com/a2a/v1', transport: 'JSONRPC' },
      { url: 'https://georoute-agent.example.com/a2a/grpc', transport: 'GRPC' },
    ],
    provider: { organization: 'Example Geo Services Inc.', url: 'https://www.examplegeoservices.com' },
    iconUrl: 'https://georoute-agent.example.com/icon.png',
    version: '1.2.0',
    documentationUrl: 'https://docs.examplegeoservices.com/georoute-agent/api',
    capabilities: { streaming: true, pushNotifications: true, stateTransitionHistory: false },
    securitySchemes: { google: { type: 'openIdConnect', openIdConnectUrl: 'https://accounts.google.com/.well-known/openid-configuration' } },
    security: [{ google: ['openid', 'profile', 'email'] }],
    defaultInputModes: ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json', 'image/png'],
    skills: [
      {
        id: 'route-optimizer-traffic',
        name: 'Traffic-Aware Route Optimizer',
        description: 'Calculates the optimal driving route between two or more locations.',
        tags: ['maps', 'routing', 'navigation'],
        examples: ['Plan a route from 1600 Amphitheatre Parkway to San Francisco International Airport avoiding tolls.'],
        inputModes: ['application/json', 'text/plain'],
        outputModes: ['application/json', 'application/vnd.geo+json', 'text/html'],
      },
      {
        id: 'custom-map-generator',
        name: 'Personalized Map Generator',
        description: 'Creates custom map images or interactive map views.',
        tags: ['maps', 'customization', 'visualization'],
      },
    ],
    supportsAuthenticatedExtendedCard: true,
  };

  const v10 = {
    name: 'Invoice Extractor',
    description: 'Extracts structured data from invoices.',
    supportedInterfaces: [
      { url: 'https://invoices.example.com/a2a/jsonrpc', protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url: 'https://invoices.example.com/a2a/rest', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' },
    ],
    provider: { organization: 'Example Finance', url: 'https://finance.example.com' },
    version: '3.0.1',
    capabilities: { streaming: false, pushNotifications: true, extendedAgentCard: false },
    defaultInputModes: ['application/pdf'],
    defaultOutputModes: ['application/json'],
    skills: [{ id: 'extract', name: 'Extract invoice', description: 'Reads an invoice.', tags: ['invoices', 'ocr'] }],
  };

  it('reads a v0.3 card: top-level url, provider, capabilities, skills and modes', () => {
    const d = registrationFromCard(v03, { labels: [{ key: 'env', value: 'prod' }], heartbeatIntervalSeconds: 15 });
    expect(d.name).toBe('GeoSpatial Route Planner Agent');
    expect(d.description).toBe(v03.description);
    expect(d.agentVersion).toBe('1.2.0');
    expect(d.endpointUrl).toBe('https://georoute-agent.example.com/a2a/v1');
    expect(d.provider).toEqual({ organization: 'Example Geo Services Inc.', url: 'https://www.examplegeoservices.com' });
    expect(d.capabilities).toEqual({ streaming: true, pushNotifications: true });
    expect(d.defaultInputModes).toEqual(['application/json', 'text/plain']);
    expect(d.defaultOutputModes).toEqual(['application/json', 'image/png']);
    expect(d.skills.map((s) => s.id)).toEqual(['route-optimizer-traffic', 'custom-map-generator']);
    expect(d.skills[0]?.outputModes).toContain('application/vnd.geo+json');
    expect(d.skills[1]?.examples).toEqual([]);
    expect(skillTagsOf(d.skills)).toEqual(['maps', 'routing', 'navigation', 'customization', 'visualization']);
    expect(d.labels).toEqual([{ key: 'env', value: 'prod' }]);
    expect(d.heartbeatIntervalSeconds).toBe(15);
    // Kept as given, including the fields this registry does not model.
    expect(d.card).toBe(v03);
  });

  it('reads a v1.0 card: the first supportedInterfaces entry is the endpoint', () => {
    const d = registrationFromCard(v10);
    expect(d.name).toBe('Invoice Extractor');
    expect(d.agentVersion).toBe('3.0.1');
    expect(d.endpointUrl).toBe('https://invoices.example.com/a2a/jsonrpc');
    expect(d.capabilities).toEqual({ streaming: false, pushNotifications: true });
    expect(d.skills[0]?.tags).toEqual(['invoices', 'ocr']);
    expect(d.heartbeatIntervalSeconds).toBe(DEFAULT_HEARTBEAT_INTERVAL_SECONDS);
    expect(d.labels).toEqual([]);
  });

  it('defaults optional sections the card leaves out', () => {
    const { provider: _p, capabilities: _c, defaultInputModes: _i, defaultOutputModes: _o, ...minimal } = v10;
    const d = registrationFromCard(minimal);
    expect(d.provider).toBeNull();
    expect(d.capabilities).toEqual({ streaming: false, pushNotifications: false });
    expect(d.defaultInputModes).toEqual([]);
  });

  const without = (card: Record<string, unknown>, key: string) => Object.fromEntries(Object.entries(card).filter(([k]) => k !== key));
  const broken: [string, string, unknown][] = [
    ['null', 'card', null],
    ['an array', 'card', [v03]],
    ['a string', 'card', '{"name":"x"}'],
    ['a card without name', 'card.name', without(v03, 'name')],
    ['a card with a numeric name', 'card.name', { ...v03, name: 42 }],
    ['a card without description', 'card.description', without(v10, 'description')],
    ['a card without version', 'card.version', without(v03, 'version')],
    ['a card without url or supportedInterfaces', 'card.supportedInterfaces', without(v03, 'url')],
    ['a v0.3 card with a non-http url', 'card.url', { ...v03, url: 'grpc://geo.example.com' }],
    ['a v0.3 card with a numeric protocolVersion', 'card.protocolVersion', { ...v03, protocolVersion: 0.3 }],
    ['a v0.3 card with a non-string preferredTransport', 'card.preferredTransport', { ...v03, preferredTransport: ['JSONRPC'] }],
    ['a v1.0 card with no interfaces', 'card.supportedInterfaces', { ...v10, supportedInterfaces: [] }],
    ['a v1.0 card whose interfaces are not an array', 'card.supportedInterfaces', { ...v10, supportedInterfaces: { url: 'https://x.example.com' } }],
    ['a v1.0 interface without url', 'card.supportedInterfaces[0].url', { ...v10, supportedInterfaces: [{ protocolBinding: 'JSONRPC' }] }],
    ['a v1.0 interface that is not an object', 'card.supportedInterfaces[0]', { ...v10, supportedInterfaces: ['https://x.example.com'] }],
    [
      'a v1.0 card whose first url is not http(s)',
      'card.supportedInterfaces[0].url',
      { ...v10, supportedInterfaces: [{ url: 'ftp://x', protocolBinding: 'JSONRPC' }] },
    ],
    ['a card without skills', 'card.skills', without(v10, 'skills')],
    ['a card whose skills are an object', 'card.skills', { ...v10, skills: {} }],
    ['a skill that is not an object', 'card.skills[0]', { ...v10, skills: ['extract'] }],
    ['a skill without tags', 'card.skills[0].tags', { ...v10, skills: [{ id: 'a', name: 'A', description: 'd' }] }],
    ['a skill with a numeric tag', 'card.skills[0].tags[1]', { ...v10, skills: [{ id: 'a', name: 'A', description: 'd', tags: ['ok', 7] }] }],
    ['a skill without id', 'card.skills[0].id', { ...v10, skills: [{ name: 'A', description: 'd', tags: [] }] }],
    ['skills sharing an id', 'card.skills[1].id', { ...v10, skills: [v10.skills[0], v10.skills[0]] }],
    ['a provider without organization', 'card.provider.organization', { ...v10, provider: { url: 'https://x.example.com' } }],
    ['a provider that is a string', 'card.provider', { ...v10, provider: 'Example' }],
    ['a non-boolean capability', 'card.capabilities.streaming', { ...v10, capabilities: { streaming: 'yes' } }],
    ['non-string default modes', 'card.defaultInputModes', { ...v10, defaultInputModes: 'text/plain' }],
    ['an oversized name', 'card.name', { ...v10, name: 'n'.repeat(201) }],
  ];
  it.each(broken)('rejects %s as BAD_USER_INPUT naming %s', (_what, field, card) => {
    const err = failure(() => registrationFromCard(card));
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.extensions.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it('names the registration arguments that are not card fields', () => {
    expect(failure(() => registrationFromCard(v10, { heartbeatIntervalSeconds: 1 })).extensions.field).toBe('heartbeatIntervalSeconds');
    expect(failure(() => registrationFromCard(v10, { labels: [{ key: '', value: 'v' }] })).extensions.field).toBe('labels[0].key');
  });

  it('rejects a card larger than 256 KiB', () => {
    const err = failure(() => registrationFromCard({ ...v10, padding: 'x'.repeat(300 * 1024) }));
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.extensions.field).toBe('card');
  });
});

describe('what an agent caller may do', () => {
  const me = '11111111-1111-4111-8111-111111111111';
  const other = '22222222-2222-4222-8222-222222222222';

  it('lets callers acting for no agent do anything', () => {
    for (const agent of [null, undefined, '']) {
      expect(() => assertAgentMayAct(agent, 'register', null)).not.toThrow();
      expect(() => assertAgentMayAct(agent, 'activate', other)).not.toThrow();
    }
  });

  it('lets an agent heartbeat, update, pause, resume and retire itself, and nothing else', () => {
    expect([...SELF_ACTIONS].sort()).toEqual(['heartbeat', 'pause', 'resume', 'retire', 'update']);
    for (const action of SELF_ACTIONS) {
      expect(() => assertAgentMayAct(me, action, me)).not.toThrow();
      expect(failure(() => assertAgentMayAct(me, action, other)).extensions).toMatchObject({ code: 'AGENT_MISMATCH', agentId: me, action });
    }
    expect(failure(() => assertAgentMayAct(me, 'register', null)).code).toBe('AGENT_MISMATCH');
    expect(failure(() => assertAgentMayAct(me, 'activate', me)).code).toBe('FORBIDDEN');
    expect(failure(() => assertAgentMayAct(me, 'activate', other)).code).toBe('AGENT_MISMATCH');
  });
});
